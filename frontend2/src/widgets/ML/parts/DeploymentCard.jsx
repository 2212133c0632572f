import { formatDateTime, formatWeight, humanize } from "../../../lib/format";
import { PALETTE } from "../../../components/charts/Chart";
import { formatNumber, formatPercent } from "../../../components/charts/scale";

export const ACTIONS = [
  {
    key: "promote",
    label: "Promote",
    verb: "Promote",
    needs: "a running or paused rollout",
    explain: (d) =>
      `Move ${d.name}'s challenger to the next rollout stage now without waiting for the gates (at the last stage it becomes the champion).`,
  },
  { key: "pause", label: "Pause", verb: "Pause", needs: "a running rollout", explain: (d) => `Freeze ${d.name}'s rollout at its current traffic split; gates stop moving it.` },
  { key: "resume", label: "Resume", verb: "Resume", needs: "a paused rollout", explain: (d) => `Let ${d.name}'s rollout continue through its gates.`, optional: true },
  {
    key: "rollback",
    label: "Roll back",
    verb: "Roll back",
    needs: "a running or paused rollout",
    danger: true,
    explain: (d) => `Send all of ${d.name}'s traffic back to the champion and end the rollout.`,
  },
];

// Health gates have a ceiling worth showing next to the measured value.
const LIMITS = {
  error_rate: (t) => formatPercent(t),
  p99_latency_ms: (t) => `${formatNumber(t)} ms`,
};

// A pending gate has not decided (too little time, traffic or feedback): neutral, never a check mark.
const GATE_STATES = {
  pass: ["✓", "passing"],
  fail: ["✗", "failing"],
  pending: ["…", "pending"],
};

function TrafficSplit({ versions }) {
  const serving = versions.filter((v) => !v.shadow);
  return (
    <div className="mlops-split" role="img" aria-label={`Traffic split: ${serving.map((v) => `${v.label} ${formatWeight(v.weight)}`).join(", ")}`}>
      {serving.map((v) => (
        <span
          key={v.id ?? v.label}
          className="mlops-split__part"
          style={{ flexGrow: Math.max(0, Number(v.weight) || 0), background: PALETTE[versions.indexOf(v) % PALETTE.length] }}
          title={`${v.label}: ${formatWeight(v.weight)}`}
        />
      ))}
    </div>
  );
}

function Gate({ gate }) {
  const state = Object.hasOwn(GATE_STATES, gate.state) ? gate.state : "pending";
  const [icon, said] = GATE_STATES[state];
  return (
    <li className={`mlops-gate mlops-gate--${state}`} data-gate={gate.name}>
      <span className="mlops-gate__icon" aria-hidden="true">{icon}</span>
      {/* The server's label says what the gate counts; older stored gates only have a name. */}
      <span className="mlops-gate__name">{gate.label || humanize(gate.name)}</span>
      <span className="mlops-gate__value">
        {gate.detail || (gate.value == null ? "no data yet" : formatNumber(gate.value))}
        {gate.threshold != null && LIMITS[gate.name] ? ` (limit ${LIMITS[gate.name](gate.threshold)})` : ""}
      </span>
      <span className="mlops-sr"> ({said})</span>
    </li>
  );
}

const pct = (v) => (typeof v === "number" ? `${Number(v.toFixed(1))}%` : String(v));

function Rollout({ rollout }) {
  if (!rollout) return <p className="mlops-note">No rollout yet.</p>;
  const stages = rollout.stages || [];
  const index = rollout.stage_index ?? -1;
  const open = ["draft", "running", "paused"].includes(rollout.status);
  return (
    <div className="mlops-rollout">
      <p className="mlops-rollout__stage">
        Rollout <span className={`mlops-pill mlops-pill--${rollout.status}`}>{humanize(rollout.status)}</span>
        {open && rollout.stage != null && (
          <>
            {" "}stage <strong>{pct(rollout.stage)}</strong>
            {stages.length > 0 && index >= 0 && ` (${index + 1} of ${stages.length})`}
          </>
        )}
        {rollout.challenger && (
          <span className="mlops-muted">
            {" "}· {rollout.challenger} challenging {rollout.champion}
          </span>
        )}
      </p>
      {open && stages.length > 0 && (
        <ol className="mlops-stepper" aria-label="Rollout stages">
          {stages.map((s, i) => (
            <li key={i} className={i < index ? "done" : i === index ? "current" : ""} aria-current={i === index ? "step" : undefined}>
              {pct(s)}
            </li>
          ))}
        </ol>
      )}
      {open &&
        (rollout.gates?.length > 0 ? (
          <>
            <ul className="mlops-gates" aria-label="Gates of this stage">
              {rollout.gates.map((g, i) => (
                <Gate key={g.name || i} gate={g} />
              ))}
            </ul>
            {rollout.decision_reason && <p className="mlops-note">Gates: {rollout.decision_reason}</p>}
          </>
        ) : (
          <p className="mlops-note">{rollout.status === "running" ? "Gates not evaluated yet in this stage." : "Gates are evaluated while the rollout runs."}</p>
        ))}
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
                    {v.framework && <span className="mlops-muted">{v.framework}{v.model_type ? `/${v.model_type}` : ""}</span>}
                  </td>
                  <td>{humanize(v.role)}{v.shadow ? " (shadow)" : ""}</td>
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
                <time dateTime={e.created_at}>{formatDateTime(e.created_at)}</time> <strong>{e.label || humanize(e.kind)}</strong>
                {e.reason ? `: ${e.reason}` : ""}
                {e.actor ? <span className="mlops-muted"> · {e.actor}</span> : null}
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
            const allowed = !!d.actions?.[a.key];
            return (
              <button
                key={a.key}
                type="button"
                className={`mlops-btn${a.danger ? " mlops-btn--danger" : ""}`}
                disabled={!allowed}
                title={allowed ? undefined : `${a.label} needs ${a.needs}`}
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
