import { formatEta } from "../../../lib/logStream";
import { humanize } from "../../../lib/format";
import { formatNumber } from "../../../components/charts/scale";
import { ProgressBar } from "../../../components/ProgressBar";
import { Empty } from "../../../components/States";

function runDetail(run) {
  const parts = [];
  if (run.epoch != null) parts.push(run.total_epochs ? `Epoch ${run.epoch}/${run.total_epochs}` : `Epoch ${run.epoch}`);
  if (Number.isFinite(run.percent)) parts.push(`${Math.round(run.percent)}%`);
  if (run.eta_seconds != null) parts.push(`ETA ${formatEta(run.eta_seconds)}`);
  const metric = Object.entries(run.metrics || {}).find(([, v]) => typeof v === "number");
  if (metric) parts.push(`${metric[0]} ${formatNumber(metric[1])}`);
  return parts.join(" · ") || humanize(run.status);
}

export function RunsPanel({ runs, onWatch }) {
  return (
    <section className="mlops-card" aria-labelledby="runs-title">
      <header className="mlops-card__head">
        <h2 id="runs-title">Training runs</h2>
        <span className="mlops-muted">{runs.length} active</span>
      </header>
      {runs.length === 0 ? (
        <Empty>No training run is queued or running.</Empty>
      ) : (
        <ul className="mlops-activity">
          {runs.map((run) => (
            <li key={run.id} data-run={run.id}>
              <div className="mlops-activity__head">
                <strong>#{run.id} {run.experiment || run.name}</strong>
                <span className="mlops-muted">{[run.framework, run.model_type].filter(Boolean).join("/")}</span>
                <span className={`mlops-pill mlops-pill--${run.status}`}>{humanize(run.status)}</span>
              </div>
              <ProgressBar label={`Run ${run.id} progress`} percent={run.percent} detail={runDetail(run)} />
              {onWatch && (
                <button type="button" className="mlops-btn mlops-btn--link" onClick={() => onWatch(run.id)}>
                  Watch the log of run #{run.id}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function StudiesPanel({ studies }) {
  return (
    <section className="mlops-card" aria-labelledby="studies-title">
      <header className="mlops-card__head">
        <h2 id="studies-title">Tuning studies</h2>
        <span className="mlops-muted">{studies.length} active</span>
      </header>
      {studies.length === 0 ? (
        <Empty>No tuning study is running.</Empty>
      ) : (
        <ul className="mlops-activity">
          {studies.map((s) => {
            const done = s.completed_trials ?? 0;
            const percent = s.n_trials ? (100 * done) / s.n_trials : null;
            const best = s.best_value == null ? "no result yet" : `best ${s.metric || "value"} ${formatNumber(s.best_value)}`;
            return (
              <li key={s.id} data-study={s.id}>
                <div className="mlops-activity__head">
                  <strong>{s.name}</strong>
                  <span className="mlops-muted">{humanize(s.strategy)}</span>
                  <span className={`mlops-pill mlops-pill--${s.status}`}>{humanize(s.status)}</span>
                </div>
                <ProgressBar
                  label={`Study ${s.name} progress`}
                  percent={percent}
                  detail={`${done}${s.n_trials ? ` of ${s.n_trials}` : ""} trials${s.running_trials ? `, ${s.running_trials} running` : ""} · ${best}`}
                />
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
