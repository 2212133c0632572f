import { useEffect, useRef, useState } from "react";
import { getJson } from "../lib/api";
import { humanize } from "../lib/format";
import { useSocket } from "../lib/useSocket";
import { Chart } from "../components/charts/Chart";
import { formatNumber, linear } from "../components/charts/scale";
import { useWidth } from "../components/charts/useWidth";
import { ConnectionBadge } from "../components/ConnectionBadge";
import { Empty, ErrorBox, Loading } from "../components/States";

const PRUNED = "pruned";
const COMPLETED = "completed";
// Pushes arrive for every trial epoch; refetching at most this often keeps the page calm.
const REFETCH_MS = 1000;

export function studyPaths(id) {
  const base = `/api/v1/studies/${id}`;
  return {
    detail: `${base}/`,
    history: `${base}/history`,
    importances: `${base}/importances`,
    parallel: `${base}/parallel-coordinates`,
  };
}

/** Optimisation history: completed trials' values and the best so far. Pruned trials are not
 * scores (their value is where they were stopped), so they are not drawn as points here. */
export function historySeries(history) {
  const completed = history.filter((t) => t.status === COMPLETED && t.value != null);
  return [
    { name: "trial value", points: completed.map((t) => ({ x: t.number, y: t.value })) },
    { name: "best so far", dash: "5 3", points: completed.map((t) => ({ x: t.number, y: t.best_value })) },
  ];
}

function fmt(value) {
  return typeof value === "number" ? formatNumber(value) : value == null ? "—" : String(value);
}

function ParamsTable({ params, caption }) {
  const entries = Object.entries(params || {});
  if (!entries.length) return null;
  return (
    <table className="mlops-table mlops-study__params">
      <caption>{caption}</caption>
      <tbody>
        {entries.map(([name, value]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <td>{fmt(value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Importances({ data }) {
  const rows = data?.importances || [];
  return (
    <figure className="mlops-chart">
      <figcaption className="mlops-chart__title">Parameter importance</figcaption>
      {rows.length === 0 ? (
        <p className="mlops-empty">{data?.note ? `Not yet: ${data.note}.` : "No completed trials yet."}</p>
      ) : (
        <ul className="mlops-study__bars">
          {rows.map((row) => (
            <li key={row.param}>
              <span className="mlops-study__bar-label">{row.param}</span>
              <span className="mlops-study__bar" aria-hidden="true">
                <span style={{ width: `${Math.max(1, row.importance * 100)}%` }} />
              </span>
              <span className="mlops-study__bar-value">{Math.round(row.importance * 100)}%</span>
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}

function axisPosition(dimension, value) {
  if (value == null) return null;
  if (dimension.type === "categorical") {
    const i = dimension.choices.indexOf(value);
    return dimension.choices.length > 1 ? i / (dimension.choices.length - 1) : 0.5;
  }
  let { low, high } = dimension;
  let v = value;
  if (dimension.log && low > 0 && v > 0) {
    [low, high, v] = [Math.log10(low), Math.log10(high), Math.log10(v)];
  }
  return high === low ? 0.5 : (v - low) / (high - low);
}

/** One line per completed trial across an axis per parameter and the objective; the best is drawn last, on top. */
export function ParallelCoordinates({ data, direction }) {
  const [ref, width] = useWidth();
  const dims = data?.dimensions || [];
  const trials = data?.trials || [];
  const height = 220;
  const pad = { top: 44, bottom: 34, left: 16, right: 16 };
  const x = linear([0, Math.max(1, dims.length - 1)], [pad.left, Math.max(pad.left + 1, width - pad.right)]);
  const spacing = dims.length > 1 ? (width - pad.left - pad.right) / (dims.length - 1) : width;
  const y = linear([0, 1], [height - pad.bottom, pad.top]);
  const objective = dims.at(-1);
  const best = trials.reduce((b, t) => (b == null || (direction === "maximize" ? t.value > b.value : t.value < b.value) ? t : b), null);
  const ordered = best ? [...trials.filter((t) => t !== best), best] : trials;
  return (
    <figure className="mlops-chart" ref={ref}>
      <figcaption className="mlops-chart__title">Parallel coordinates (completed trials; best in orange)</figcaption>
      {trials.length === 0 || dims.length === 0 ? (
        <p className="mlops-empty">No completed trials yet.</p>
      ) : (
        <svg width={width} height={height} role="img" aria-label={`Parallel coordinates of ${trials.length} completed trials`}>
          {ordered.map((t) => {
            const points = dims
              .map((d, i) => [x(i), axisPosition(d, d === objective ? t.value : t.params?.[d.name])])
              .filter(([, p]) => p != null)
              .map(([px, p]) => `${px},${y(p)}`)
              .join(" ");
            return (
              <polyline key={t.number} points={points} fill="none" stroke={t === best ? "#ea580c" : "#2563eb"}
                strokeOpacity={t === best ? 1 : 0.45} strokeWidth={t === best ? 3 : 1.5}>
                <title>{`trial #${t.number}: ${fmt(t.value)}`}</title>
              </polyline>
            );
          })}
          {dims.map((d, i) => {
            const anchor = i === 0 ? "start" : i === dims.length - 1 ? "end" : "middle";
            // Narrow charts: axis names alternate between two rows and are shortened to the room
            // they have (the full name is in the tooltip), so neighbours never overlap.
            const staggered = spacing < 120;
            const room = Math.max(4, Math.floor(((staggered ? 2 : 1) * spacing) / 7.5));
            const label = d.name.length > room ? `${d.name.slice(0, room - 1)}…` : d.name;
            const labelY = staggered && i % 2 === 1 ? pad.top - 28 : pad.top - 12;
            const lo = d.type === "categorical" ? d.choices[0] : d.low;
            const hi = d.type === "categorical" ? d.choices.at(-1) : d.high;
            return (
              <g key={d.name} className="mlops-study__axis">
                <line x1={x(i)} x2={x(i)} y1={y(0)} y2={y(1)} stroke="currentColor" strokeOpacity="0.6" />
                <text x={x(i)} y={labelY} textAnchor={anchor} fontSize="12" fontWeight="600" fill="currentColor">
                  <title>{d.name}</title>
                  {label}
                </text>
                <text x={x(i)} y={y(1) - 1} dx={i === dims.length - 1 ? -4 : 4} textAnchor={i === dims.length - 1 ? "end" : "start"}
                  fontSize="11" fill="currentColor" dominantBaseline="hanging">{fmt(hi)}</text>
                <text x={x(i)} y={height - pad.bottom + 16} textAnchor={anchor} fontSize="11" fill="currentColor">{fmt(lo)}</text>
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}

function TrialsTable({ history }) {
  if (!history.length) return <Empty>No trials yet.</Empty>;
  return (
    <div className="mlops-table-wrap">
      <table className="mlops-table mlops-study__trials">
        <caption>Trials</caption>
        <thead>
          <tr><th>#</th><th>status</th><th>value</th><th>params</th></tr>
        </thead>
        <tbody>
          {history.map((t) => (
            <tr key={t.number} data-trial-status={t.status}>
              <td>{t.number}</td>
              <td><span className={`mlops-pill mlops-pill--${t.status}`}>{humanize(t.status)}</span></td>
              <td>
                {t.status === PRUNED
                  ? `pruned${t.last_intermediate != null ? ` (last reported ${fmt(t.last_intermediate)})` : ""}`
                  : fmt(t.value)}
              </td>
              <td>{Object.entries(t.params || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * A tuning study, live: status and trial counts, optimisation history, parameter importance,
 * parallel coordinates, the best parameters and every trial. It reloads when the dashboard socket
 * says this study changed (a trial started, reported, finished or was pruned), never on a timer.
 */
export function StudyWidget({ studyId, fetchJson = getJson, WebSocketImpl }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [pushes, setPushes] = useState(0);
  const lastFetch = useRef(0);
  const pending = useRef(null);

  const [connection] = useSocket({
    path: "/ws/dashboard/",
    WebSocketImpl,
    onMessage: (msg) => {
      if (msg.type !== "study" || msg.study?.id !== studyId) return;
      const wait = Math.max(0, lastFetch.current + REFETCH_MS - Date.now());
      clearTimeout(pending.current);
      pending.current = setTimeout(() => setPushes((n) => n + 1), wait);
    },
  });
  useEffect(() => () => clearTimeout(pending.current), []);

  useEffect(() => {
    let cancelled = false;
    const paths = studyPaths(studyId);
    lastFetch.current = Date.now();
    Promise.all([
      fetchJson(paths.detail),
      fetchJson(paths.history),
      // Importances and coordinates are extras: a failure there leaves the rest of the page working.
      fetchJson(paths.importances).catch(() => null),
      fetchJson(paths.parallel).catch(() => null),
    ]).then(
      ([detail, history, importances, parallel]) => {
        if (cancelled) return;
        setData({ detail, history, importances, parallel });
        setError(null);
      },
      (err) => !cancelled && setError(err),
    );
    return () => {
      cancelled = true;
    };
  }, [studyId, fetchJson, pushes]);

  if (error && !data) return <ErrorBox error={error} onRetry={() => setPushes((n) => n + 1)} title="Could not load the study" />;
  if (!data) return <Loading />;
  const { detail, history, importances, parallel } = data;
  const best = detail.best_trial;
  const pruned = history.filter((t) => t.status === PRUNED).length;
  return (
    <section className="mlops-card mlops-study" aria-label={`Study ${detail.name}`}>
      <div className="mlops-study__head">
        <span className={`mlops-pill mlops-pill--${detail.status}`}>{humanize(detail.status)}</span>
        <span className="mlops-study__counts">
          {detail.n_finished}/{detail.max_trials} trials finished
          {detail.n_running ? ` · ${detail.n_running} running` : ""}
          {pruned ? ` · ${pruned} pruned` : ""} · {detail.direction} {detail.objective_metric}
        </span>
        <ConnectionBadge state={connection} />
      </div>
      {error && <p className="mlops-error" role="status">Showing the last loaded state: {error.message}</p>}
      <div className="mlops-study__grid">
        <Chart title={`Optimisation history (${detail.objective_metric})`} series={historySeries(history)} height={200}
          xIntegers xFormat={(v) => `#${v}`} emptyText="No completed trial yet." />
        <Importances data={importances} />
      </div>
      {pruned > 0 && (
        <p className="mlops-muted">
          {pruned} pruned trial{pruned === 1 ? " is" : "s are"} not plotted: a pruned value is where the trial was stopped, not a score.
        </p>
      )}
      <ParallelCoordinates data={parallel} direction={detail.direction} />
      {best ? (
        <div className="mlops-study__best">
          <p>
            Best: trial #{best.number} · {detail.objective_metric} = <strong>{fmt(best.value)}</strong>
          </p>
          <ParamsTable params={best.params} caption="Best parameters" />
        </div>
      ) : (
        <Empty>No completed trial yet.</Empty>
      )}
      <TrialsTable history={history} />
    </section>
  );
}
