import { useCallback, useEffect, useId, useMemo, useRef, useState } from "react";
import { getJson } from "../lib/api";
import { formatDateTime, humanize } from "../lib/format";
import { useSocket } from "../lib/useSocket";
import { ConnectionBadge } from "../components/ConnectionBadge";
import { Empty, ErrorBox, Loading } from "../components/States";

export const DEPLOYMENTS_SOCKET_PATH = "/ws/deployments/";
// An evaluation in progress changes no deployment, so no push announces its verdict: while one is
// queued or running the widget asks again this often. Rollout steps and alias moves arrive by push.
export const EVALUATION_POLL_MS = 10000;
const EVALUATING = new Set(["queued", "running"]);

export function timelinePath(deployment) {
  return `/api/v1/delivery/deployments/${encodeURIComponent(deployment)}/timeline`;
}

const STEP_LABELS = {
  dataset_version: "Data",
  training_run: "Training",
  model_version: "Registry",
  evaluation: "Evaluation",
  rollout: "Rollout",
  alias: "Alias",
};

// Outcomes a reader should notice at a glance: green for promoted, red for stopped, amber in between.
function outcomeTone(outcome) {
  if (outcome === "completed" || outcome === "passed") return "ok";
  if (["rolled_back", "aborted", "rejected", "failed"].includes(outcome)) return "error";
  return "pending";
}

function Chain({ chain }) {
  return (
    <li className="mlops-timeline__chain" data-version={chain.version}>
      <h3>
        {chain.candidate}{" "}
        <span className={`mlops-badge mlops-badge--${outcomeTone(chain.outcome)}`} data-outcome={chain.outcome}>
          {humanize(chain.outcome)}
        </span>
      </h3>
      <ol className="mlops-timeline__steps">
        {chain.steps.map((step, i) => (
          <li key={`${step.step}-${step.at}-${i}`} data-step={step.step}>
            <time dateTime={step.at || undefined} className="mlops-muted">
              {formatDateTime(step.at) || "—"}
            </time>{" "}
            <strong>{STEP_LABELS[step.step] || humanize(step.step)}</strong>: {step.what}
            <span className="mlops-muted"> · by {step.actor}</span>
            {step.reason && <div className="mlops-note">{step.reason}</div>}
          </li>
        ))}
      </ol>
    </li>
  );
}

/**
 * A deployment's delivery timeline: for each candidate version, dataset version → training run →
 * candidate evaluation → model version → rollout stages → promotion or rollback, each step with who
 * or what did it and why (GET /api/v1/delivery/deployments/<name>/timeline). It reloads quietly on
 * the ws/deployments/ "deployment.changed" push for this deployment, after a reconnect (what
 * happened meanwhile is not replayed), and every EVALUATION_POLL_MS while an evaluation is pending.
 */
export function DeliveryTimelineWidget({
  deployments = null,
  deployment: initial = null,
  fetchJson = getJson,
  WebSocketImpl,
  pollMs = EVALUATION_POLL_MS,
}) {
  const ids = useId();
  // Memoized so that `name`, which may be names[0], stays the same value between renders for `load`.
  const names = useMemo(() => (deployments || []).map((d) => (typeof d === "string" ? d : d.name)), [deployments]);
  const [chosen, setChosen] = useState(initial);
  const name = chosen && (deployments == null || names.includes(chosen)) ? chosen : initial ?? names[0] ?? null;
  // `result` answers the deployment in result.name: until the one shown has its answer, it is loading.
  const [result, setResult] = useState({ status: "loading", chains: null, error: null, name: null });
  const [retry, setRetry] = useState(0);

  const load = useCallback(
    (signal) => {
      if (!name) return;
      fetchJson(timelinePath(name), { signal })
        .then((chains) => setResult({ status: "ready", chains: chains || [], error: null, name }))
        .catch((error) => {
          if (error?.name === "AbortError") return;
          setResult((r) => ({ status: "error", chains: r.name === name ? r.chains : null, error, name }));
        });
    },
    [name, fetchJson],
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

  const opened = useRef(false);
  const [connection] = useSocket({
    path: name ? DEPLOYMENTS_SOCKET_PATH : null,
    WebSocketImpl,
    onMessage: (msg) => {
      if (msg?.type === "deployment.changed" && msg.deployment === name) load();
    },
    onOpen: () => {
      if (opened.current) load();
      opened.current = true;
    },
  });

  // Only the chains of the deployment shown count (a switch keeps the old ones until the new load).
  const current = result.name === name ? result : { status: "loading", chains: null, error: null };
  const chains = current.chains;
  const evaluating = (chains || []).some((c) => EVALUATING.has(c.outcome));
  useEffect(() => {
    if (!evaluating || !pollMs) return undefined;
    const timer = setTimeout(() => load(), pollMs);
    return () => clearTimeout(timer);
  }, [evaluating, pollMs, chains, load]);

  let body;
  if (deployments != null && names.length === 0) body = <Empty>No deployment to follow yet.</Empty>;
  else if (!name) body = <Empty>Pick a deployment.</Empty>;
  else if (current.status === "error" && !chains)
    body = <ErrorBox error={current.error} onRetry={retryLoad} title="Could not load the delivery timeline" />;
  else if (!chains) body = <Loading>Loading the delivery timeline…</Loading>;
  else if (!chains.length)
    body = <Empty>No candidate has reached {name} yet: new versions appear here once its delivery policy evaluates them or a rollout starts.</Empty>;
  else
    body = (
      <>
        {current.status === "error" && <ErrorBox error={current.error} onRetry={retryLoad} title="Showing older data" />}
        <ol className="mlops-timeline">
          {chains.map((chain) => (
            <Chain key={chain.model_version_id} chain={chain} />
          ))}
        </ol>
      </>
    );

  return (
    <section className="mlops-card mlops-delivery" aria-labelledby={`${ids}-title`}>
      <header className="mlops-card__head">
        <h2 id={`${ids}-title`}>Delivery timeline{deployments == null && name ? ` · ${name}` : ""}</h2>
        <ConnectionBadge state={connection} label="Live" />
      </header>
      {deployments != null && names.length > 1 && (
        <div className="mlops-toolbar">
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
        </div>
      )}
      {body}
    </section>
  );
}

export default DeliveryTimelineWidget;
