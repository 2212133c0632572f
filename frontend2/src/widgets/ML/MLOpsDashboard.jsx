import { useCallback, useEffect, useRef, useState } from "react";
import { getJson, postJson } from "../../lib/api";
import { applyPush } from "../../lib/summary";
import { useSocket } from "../../lib/useSocket";
import { ConfirmDialog } from "../../components/ConfirmDialog";
import { ConnectionBadge } from "../../components/ConnectionBadge";
import { Empty, ErrorBox, Loading } from "../../components/States";
import { ModelPerformanceWidget } from "./ModelPerformanceWidget";
import { TrainingLogsWidget } from "./TrainingLogsWidget";
import { DeliveryTimelineWidget } from "../DeliveryTimelineWidget";
import { AlertsWidget } from "../AlertsWidget";
import { DeploymentCard } from "./parts/DeploymentCard";
import { RunsPanel, StudiesPanel } from "./parts/ActivityPanels";

export const SUMMARY_PATH = "/api/v1/dashboard/summary";
export const DASHBOARD_SOCKET_PATH = "/ws/dashboard/";

export function actionPath(deploymentName, action) {
  return `/api/v1/deployments/${encodeURIComponent(deploymentName)}/rollout/${action}`;
}

/**
 * The analysts' and staff's live view: deployments with their traffic split, rollout stage, gates
 * and last events; running training runs and tuning studies; model performance and training logs.
 * Loaded once, then kept current by pushes on ws/dashboard/ (a reconnect reloads, to catch up).
 * Staff (GET /api/v1/me → can_act) get promote / pause / roll back buttons behind a confirmation;
 * the result shows up through the same push as anyone else's change.
 */
export function MLOpsDashboard({ fetchJson = getJson, sendJson = postJson, WebSocketImpl }) {
  const [me, setMe] = useState(null);
  const [summary, setSummary] = useState(null);
  const [error, setError] = useState(null);
  const [perfRefresh, setPerfRefresh] = useState({});
  const [pending, setPending] = useState(null);
  const [notice, setNotice] = useState(null);
  const [watch, setWatch] = useState(null);
  const [alertPush, setAlertPush] = useState(null);
  const [reconnects, setReconnects] = useState(0);
  const opened = useRef(false);
  const logsRef = useRef(null);

  const load = useCallback(() => {
    setError(null);
    return Promise.all([fetchJson("/api/v1/me"), fetchJson(SUMMARY_PATH)])
      .then(([who, data]) => {
        setMe(who);
        setSummary(data);
      })
      .catch((err) => setError(err));
  }, [fetchJson]);

  useEffect(() => {
    load();
  }, [load]);

  const onMessage = useCallback((msg) => {
    setSummary((s) => applyPush(s, msg));
    if (msg.type === "alert") setAlertPush(msg);
    if (msg.type === "deployment" && msg.deployment?.name) {
      const name = msg.deployment.name;
      setPerfRefresh((r) => ({ ...r, [name]: (r[name] || 0) + 1 }));
    }
  }, []);

  const [connection] = useSocket({
    path: me?.can_act === undefined ? null : DASHBOARD_SOCKET_PATH,
    onMessage,
    onOpen: () => {
      // What changed while the socket was down is not replayed: reload once to catch up.
      if (opened.current) {
        load();
        setReconnects((n) => n + 1);
      }
      opened.current = true;
    },
    WebSocketImpl,
  });

  const runAction = async (reason) => {
    const { deployment, action } = pending;
    setPending((p) => ({ ...p, busy: true, error: null }));
    try {
      // The stage we saw: if the rollout moved meanwhile the server refuses (409) instead of acting twice.
      await sendJson(actionPath(deployment.name, action.key), { stage: deployment.rollout?.stage_index ?? 0, reason });
      setPending(null);
      setNotice(`${action.verb}: done for ${deployment.name}.`);
    } catch (err) {
      setPending((p) => ({ ...p, busy: false, error: err }));
    }
  };

  const watchRun = (id) => {
    setWatch({ id });
    logsRef.current?.scrollIntoView?.({ behavior: "smooth", block: "start" });
  };

  if (error && !summary) {
    return (
      <div className="mlops mlops-dashboard">
        <ErrorBox error={error} onRetry={load} title="The dashboard could not load" />
      </div>
    );
  }
  if (!summary || !me) {
    return (
      <div className="mlops mlops-dashboard">
        <Loading>Loading the dashboard…</Loading>
      </div>
    );
  }

  const deployments = summary.deployments || [];
  const name = deployments[0]?.name;
  return (
    <div className="mlops mlops-dashboard">
      <div className="mlops-dashboard__bar">
        <ConnectionBadge state={connection} label="Live updates" />
        <span className="mlops-muted">
          Signed in as <strong>{me.username}</strong> ({me.role || "no role"}){me.can_act ? "" : " · read only"}
        </span>
      </div>
      {error && <ErrorBox error={error} onRetry={load} title="Could not refresh" />}
      {notice && (
        <p className="mlops-notice" role="status">
          {notice}{" "}
          <button type="button" className="mlops-btn mlops-btn--link" onClick={() => setNotice(null)}>
            Dismiss
          </button>
        </p>
      )}
      <section aria-labelledby="deployments-title" className="mlops-section">
        <h2 id="deployments-title">Deployments</h2>
        {deployments.length === 0 ? (
          <Empty>No active deployment. Deploy a registered model version from the admin.</Empty>
        ) : (
          <div className="mlops-grid mlops-grid--deployments">
            {deployments.map((d) => (
              <DeploymentCard key={d.name} deployment={d} canAct={!!me.can_act} onAction={(dep, action) => setPending({ deployment: dep, action })} />
            ))}
          </div>
        )}
      </section>
      <div className="mlops-grid mlops-grid--two">
        <RunsPanel runs={summary.runs || []} onWatch={watchRun} />
        <StudiesPanel studies={summary.studies || []} />
      </div>
      <ModelPerformanceWidget
        deployments={deployments}
        deployment={name}
        refreshKeys={perfRefresh}
        fetchJson={fetchJson}
      />
      <DeliveryTimelineWidget deployments={deployments} deployment={name} fetchJson={fetchJson} WebSocketImpl={WebSocketImpl} />
      <AlertsWidget fetchJson={fetchJson} push={alertPush} reloadKey={reconnects} />
      <div ref={logsRef}>
        <TrainingLogsWidget runs={summary.recent_runs || []} fetchJson={fetchJson} WebSocketImpl={WebSocketImpl} select={watch} />
      </div>
      {pending && (
        <ConfirmDialog
          title={`${pending.action.verb} ${pending.deployment.name}?`}
          message={pending.action.explain(pending.deployment)}
          confirmLabel={pending.action.label}
          danger={!!pending.action.danger}
          busy={!!pending.busy}
          error={pending.error}
          onConfirm={runAction}
          onCancel={() => !pending.busy && setPending(null)}
        />
      )}
    </div>
  );
}

export default MLOpsDashboard;
