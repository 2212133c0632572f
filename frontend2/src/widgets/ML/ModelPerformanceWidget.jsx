import { useCallback, useEffect, useEffectEvent, useId, useMemo, useState } from "react";
import { getJson } from "../../lib/api";
import { formatWeight, humanize } from "../../lib/format";
import { WINDOWS, normalizeTimeseries, timeseriesPath, windowSummaryPath } from "../../lib/performance";
import { Chart, PALETTE } from "../../components/charts/Chart";
import { formatNumber, formatPercent, formatTime } from "../../components/charts/scale";
import { Empty, ErrorBox, Loading } from "../../components/States";
import { CalibrationView } from "./parts/CalibrationView";

const LATENCY = [
  ["p50", "p50", undefined],
  ["p95", "p95", "6 3"],
  ["p99", "p99", "2 3"],
];

const ms = (v) => (Number.isFinite(v) ? `${formatNumber(v)} ms` : "—");
// Three decimals: versions often differ in the second one.
const logLoss = (v) => (Number.isFinite(v) ? v.toFixed(3) : "—");

function WindowPicker({ value, onChange, name }) {
  return (
    <fieldset className="mlops-segmented">
      <legend>Time window</legend>
      {WINDOWS.map((w) => (
        <label key={w.value} className="mlops-segmented__option">
          <input type="radio" name={name} value={w.value} checked={value === w.value} onChange={() => onChange(w.value)} />
          <span>{w.label}</span>
        </label>
      ))}
    </fieldset>
  );
}

function SideBySide({ versions, metric }) {
  const rows = [
    ["Role", (v) => humanize(v.role || "—")],
    ["Traffic weight", (v) => formatWeight(v.weight)],
    ["Requests", (v) => formatNumber(v.totals.requests)],
    ["Error rate", (v) => formatPercent(v.totals.errorRate)],
    [metric === "rmse" ? "RMSE" : "Accuracy", (v) => (metric === "rmse" ? formatNumber(v.totals.quality) : formatPercent(v.totals.quality))],
    ...(metric === "rmse" ? [] : [["Log loss", (v) => logLoss(v.totals.logLoss)]]),
    ["Labelled rows", (v) => (v.totals.feedback == null ? "—" : formatNumber(v.totals.feedback))],
    ["Latency p50", (v) => ms(v.totals.p50)],
    ["Latency p95", (v) => ms(v.totals.p95)],
    ["Latency p99", (v) => ms(v.totals.p99)],
    ["Max feature drift (PSI)", (v) => (v.totals.drift == null ? "—" : formatNumber(v.totals.drift))],
  ];
  return (
    <div className="mlops-table-wrap">
      <table className="mlops-table mlops-compare">
        <caption>Champion vs challenger over the window</caption>
        <thead>
          <tr>
            <th scope="col">Measure</th>
            {versions.map((v, i) => (
              <th scope="col" key={v.key}>
                <span className="mlops-swatch" style={{ background: PALETTE[i % PALETTE.length] }} aria-hidden="true" />
                {v.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map(([label, cell]) => (
            <tr key={label}>
              <th scope="row">{label}</th>
              {versions.map((v) => (
                <td key={v.key}>{cell(v)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Served features whose distribution moved away from the training data (the summary's
 * drift_warnings: PSI on the training profile's fixed bins, 0.1 warns and 0.25 alerts).
 */
function DriftWarnings({ summary }) {
  const flagged = (summary?.versions || []).flatMap((v) => (v.drift_warnings || []).map((w) => ({ ...w, version: v.version })));
  if (!flagged.length) return null;
  const alert = flagged.some((w) => w.level === "alert");
  return (
    <div className="mlops-notice mlops-drift-warning" role="alert" style={{ background: alert ? "#fef2f2" : "#fffbeb", borderColor: alert ? "#fecaca" : "#fde68a" }}>
      <strong>{alert ? "Feature drift alert" : "Feature drift warning"}</strong>
      <ul>
        {flagged.map((w) => (
          <li key={`${w.version}-${w.feature}`}>
            v{w.version} · {w.feature}: PSI {formatNumber(w.psi)} ({w.level}), {formatNumber(w.served_values)} served values
          </li>
        ))}
      </ul>
      <small>PSI from 0.1 is a warning, from 0.25 an alert (served inputs against the training data).</small>
    </div>
  );
}

/** Which deployment and window an answer is for. */
function requestKey(deployment, timeWindow) {
  return `${deployment} ${timeWindow}`;
}

/**
 * Per deployment and model version: accuracy and log loss (or RMSE), latency percentiles, request
 * volume and error rate over a selectable window, champion and challenger side by side, and for
 * classifiers a calibration view. `refreshKey` changes
 * when the dashboard's socket says this deployment changed, which reloads the series.
 */
export function ModelPerformanceWidget({
  deployments = null,
  deployment: initial = null,
  refreshKey = 0,
  refreshKeys = null,
  fetchJson = getJson,
  defaultWindow = "1h",
}) {
  const ids = useId();
  // Memoized so that `name`, which may be names[0], stays the same value between renders for `load`.
  const names = useMemo(() => (deployments || []).map((d) => (typeof d === "string" ? d : d.name)), [deployments]);
  const [chosen, setChosen] = useState(initial);
  const name = chosen && (deployments == null || names.includes(chosen)) ? chosen : initial ?? names[0] ?? null;
  const [timeWindow, setTimeWindow] = useState(defaultWindow);
  // `result` answers the request named by result.key; until the one asked now answers, it is loading
  // (and the charts of the previous answer stay on screen, marked "Updating…").
  const key = requestKey(name, timeWindow);
  const [result, setResult] = useState({ status: "loading", data: null, error: null, key: null });
  const [retry, setRetry] = useState(0);

  const load = useCallback(
    (signal) => {
      if (!name) return;
      const answered = requestKey(name, timeWindow);
      Promise.all([fetchJson(timeseriesPath(name, timeWindow), { signal }), fetchJson(windowSummaryPath(name, timeWindow), { signal })])
        .then(([series, summary]) => setResult({ status: "ready", data: normalizeTimeseries(series, summary), summary, error: null, key: answered }))
        .catch((error) => {
          if (error?.name !== "AbortError") setResult((r) => ({ status: "error", data: r.data, summary: r.summary, error, key: answered }));
        });
    },
    [name, timeWindow, fetchJson],
  );

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load, retry]);

  const retryLoad = () => {
    setResult((r) => ({ ...r, status: "loading", error: null }));
    setRetry((n) => n + 1);
  };

  // Pushed changes reload quietly, keeping the charts on screen meanwhile. Only a push reruns this
  // effect: `load` changing (another deployment or window) is the effect above's job.
  const pushed = refreshKey + (refreshKeys?.[name] || 0);
  const reloadOnPush = useEffectEvent((signal) => load(signal));
  useEffect(() => {
    if (!pushed) return undefined;
    const controller = new AbortController();
    reloadOnPush(controller.signal);
    return () => controller.abort();
  }, [pushed]);

  const status = result.key === key ? result.status : "loading";
  const data = result.data;
  const metric = data?.metric ?? "accuracy";
  const span = data?.hasPoints
    ? Math.max(...data.versions.flatMap((v) => v.points.map((p) => p.t))) - Math.min(...data.versions.flatMap((v) => v.points.map((p) => p.t)))
    : 0;
  const xFormat = (t) => formatTime(t, span);
  // Empty buckets stay in as gaps (y null), so a line does not pretend to know what happened there.
  const perVersion = (key) =>
    (data?.versions || []).map((v, i) => ({
      name: v.label,
      color: PALETTE[i % PALETTE.length],
      points: v.points.map((p) => ({ x: p.t, y: p[key] })),
    }));

  let body;
  if (deployments != null && names.length === 0) body = <Empty>No active deployment to watch yet.</Empty>;
  else if (!name) body = <Empty>Pick a deployment.</Empty>;
  else if (status === "error" && !data) body = <ErrorBox error={result.error} onRetry={retryLoad} title="Could not load performance" />;
  else if (!data) body = <Loading>Loading performance…</Loading>;
  else if (!data.versions.length) body = <Empty>This deployment serves no model version yet.</Empty>;
  else
    body = (
      <>
        {status === "error" && <ErrorBox error={result.error} onRetry={retryLoad} title="Showing older data" />}
        <DriftWarnings summary={result.summary} />
        <SideBySide versions={data.versions} metric={metric} />
        {metric !== "rmse" && data.versions.some((v) => v.totals.calibration?.length) && (
          <CalibrationView
            versions={data.versions.map((v, i) => ({ key: v.key, label: v.label, color: PALETTE[i % PALETTE.length], bins: v.totals.calibration }))}
          />
        )}
        {!data.hasPoints ? (
          <Empty>No predictions in this window.</Empty>
        ) : (
          <div className="mlops-grid mlops-grid--charts">
            <Chart
              title={metric === "rmse" ? "RMSE over time (lower is better)" : "Accuracy over time"}
              series={perVersion("quality")}
              xFormat={xFormat}
              yFormat={metric === "rmse" ? formatNumber : formatPercent}
              emptyText="No feedback (ground truth) yet in this window."
            />
            <Chart
              title="Requests per bucket"
              series={perVersion("requests").map((s, i) => ({ ...s, type: "bar", legend: `${formatNumber(data.versions[i].totals.requests)} in window` }))}
              xFormat={xFormat}
            />
            <Chart title="Error rate" series={perVersion("errorRate")} xFormat={xFormat} yFormat={formatPercent} yMin={0} />
            {data.versions.map((v, i) => (
              <Chart
                key={v.key}
                title={`Latency of ${v.label} (ms)`}
                xFormat={xFormat}
                series={LATENCY.map(([key, label, dash]) => ({
                  name: label,
                  dash,
                  color: PALETTE[i % PALETTE.length],
                  points: v.points.map((p) => ({ x: p.t, y: p[key] })),
                }))}
              />
            ))}
          </div>
        )}
      </>
    );

  return (
    <section className="mlops-card mlops-perf" aria-labelledby={`${ids}-title`}>
      <header className="mlops-card__head">
        <h2 id={`${ids}-title`}>Model performance{deployments == null && name ? ` · ${name}` : ""}</h2>
        {status === "loading" && data && <span className="mlops-badge mlops-badge--pending">Updating…</span>}
      </header>
      <div className="mlops-toolbar">
        {deployments != null && names.length > 0 && (
          <label className="mlops-field">
            <span>Deployment</span>
            <select value={name ?? ""} onChange={(e) => setChosen(e.target.value)}>
              {names.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
        )}
        <WindowPicker value={timeWindow} onChange={setTimeWindow} name={`${ids}-window`} />
      </div>
      {body}
    </section>
  );
}

export default ModelPerformanceWidget;
