import { formatDateTime, formatWeight, humanize, weightFraction } from "../../../lib/format";
import { PALETTE } from "../../../components/charts/Chart";
import { formatNumber } from "../../../components/charts/scale";

export const ACTIONS = [
  {
    key: "promote",
    label: "Promote",
    verb: "Promote",
    explain: (d) => `Move ${d.name}'s rollout to its next stage now, or make the challenger the champion at the last stage.`,
  },
  { key: "pause", label: "Pause", verb: "Pause", explain: (d) => `Freeze ${d.name}'s rollout at its current traffic split.` },
  { key: "resume", label: "Resume", verb: "Resume", explain: (d) => `Let ${d.name}'s rollout continue through its gates.`, optional: true },
  {
    key: "rollback",
    label: "Roll back",
    verb: "Roll back",
    danger: true,
    explain: (d) => `Send all of ${d.name}'s traffic back to the champion and stop the rollout.`,
  },
];

const OPS = { gte: "≥", ">=": "≥", lte: "≤", "<=": "≤", gt: ">", ">": ">", lt: "<", "<": "<" };

function TrafficSplit({ versions }) {
  const total = versions.reduce((sum, v) => sum + weightFraction(v.weight), 0) || 1;
  return (
    <div className="mlops-split" role="img" aria-label={`Traffic split: ${versions.map((v) => `${v.label} ${formatWeight(v.weight)}`).join(", ")}`}>
      {versions.map((v, i) => (
        <span
          key={v.id ?? v.label}
          className="mlops-split__part"
          style={{ flexGrow: weightFraction(v.weight) / total, background: PALETTE[i % PALETTE.length] }}
          title={`${v.label}: ${formatWeight(v.weight)}`}
        />
      ))}
    </div>
  );
}

function Gate({ gate }) {
  const state = gate.passed === true ? "pass" : gate.passed === false ? "fail" : "pending";
  const icon = { pass: "✓", fail: "✗", pending: "…" }[state];
  const condition = gate.metric ? `${gate.metric} ${OPS[gate.op] || gate.op || ""} ${gate.threshold ?? ""}`.trim() : "";
  return (
    <li className={`mlops-gate mlops-gate--${state}`}>
      <span className="mlops-gate__icon" aria-hidden="true">{icon}</span>
      <span className="mlops-gate__name">{gate.name || condition}</span>
      {gate.name && condition && <span className="mlops-gate__cond">{condition}</span>}
      <span className="mlops-gate__value">
        {gate.value == null ? "no data yet" : `now ${typeof gate.value === "number" ? formatNumber(gate.value) : gate.value}`}
        <span className="mlops-sr"> ({state === "pass" ? "passing" : state === "fail" ? "failing" : "not evaluated"})</span>
      </span>
    </li>
  );
}

function Rollout({ rollout }) {
  if (!rollout) return <p className="mlops-note">No rollout in progress.</p>;
  const stages = rollout.stages || [];
  const index = rollout.stage_index ?? stages.findIndex((s) => String(s) === String(rollout.stage));
  return (
    <div className="mlops-rollout">
      <p className="mlops-rollout__stage">
        Rollout <span className={`mlops-pill mlops-pill--${rollout.status}`}>{humanize(rollout.status)}</span>
        {rollout.stage != null && (
          <>
            {" "}stage <strong>{typeof rollout.stage === "number" ? `${rollout.stage}%` : rollout.stage}</strong>
            {stages.length > 0 && index >= 0 && ` (${index + 1} of ${stages.length})`}
          </>
        )}
      </p>
      {stages.length > 0 && (
        <ol className="mlops-stepper" aria-label="Rollout stages">
          {stages.map((s, i) => (
            <li key={i} className={i < index ? "done" : i === index ? "current" : ""} aria-current={i === index ? "step" : undefined}>
              {typeof s === "number" ? `${s}%` : s}
            </li>
          ))}
        </ol>
      )}
      {rollout.gates?.length > 0 ? (
        <ul className="mlops-gates" aria-label="Gates of this stage">
          {rollout.gates.map((g, i) => (
            <Gate key={g.name || i} gate={g} />
          ))}
        </ul>
      ) : (
        <p className="mlops-note">This stage has no gates.</p>
      )}
    </div>
  );
}

export function DeploymentCard({ deployment: d, canAct, onAction }) {
  const versions = d.versions || [];
  const headingId = `dep-${d.name}`.replace(/[^\w-]/g, "-");
  const actions = ACTIONS.filter((a) => !a.optional || d.actions?.[a.key]);
  return (
    <article className="mlops-card mlops-deployment" aria-labelledby={headingId} data-deployment={d.name}>
      <header className="mlops-card__head">
        <h3 id={headingId}>{d.name}</h3>
        <span className={`mlops-pill mlops-pill--${d.status}`}>{humanize(d.status)}</span>
      </header>
      {versions.length ? (
        <>
          <TrafficSplit versions={versions} />
          <table className="mlops-table mlops-versions">
            <caption className="mlops-sr">Versions and traffic weights</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Role</th>
                <th scope="col">Weight</th>
              </tr>
            </thead>
            <tbody>
              {versions.map((v, i) => (
                <tr key={v.id ?? v.label}>
                  <td>
                    <span className="mlops-swatch" style={{ background: PALETTE[i % PALETTE.length] }} aria-hidden="true" />
                    {v.label}
                    {v.framework && <span className="mlops-muted"> · {v.framework}{v.model_type ? `/${v.model_type}` : ""}</span>}
                  </td>
                  <td>{humanize(v.role)}</td>
                  <td data-testid="weight">{formatWeight(v.weight)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : (
        <p className="mlops-note">No model version is serving.</p>
      )}
      <Rollout rollout={d.rollout} />
      <details className="mlops-events" open>
        <summary>Last events</summary>
        {d.events?.length ? (
          <ul>
            {d.events.map((e, i) => (
              <li key={e.id ?? i}>
                <time dateTime={e.created_at}>{formatDateTime(e.created_at)}</time> <strong>{humanize(e.kind)}</strong>
                {e.message ? ` ${e.message}` : ""}
                {e.user ? <span className="mlops-muted"> by {e.user}</span> : null}
              </li>
            ))}
          </ul>
        ) : (
          <p className="mlops-note">No events yet.</p>
        )}
      </details>
      {canAct && (
        <div className="mlops-actions" role="group" aria-label={`Actions for ${d.name}`}>
          {actions.map((a) => {
            const allowed = d.actions ? d.actions[a.key] !== false : true;
            return (
              <button
                key={a.key}
                type="button"
                className={`mlops-btn${a.danger ? " mlops-btn--danger" : ""}`}
                disabled={!allowed}
                title={allowed ? undefined : `${a.label} is not possible in the current state`}
                onClick={() => onAction(d, a)}
              >
                {a.label}
              </button>
            );
          })}
        </div>
      )}
    </article>
  );
}
