/**
 * The dashboard's state: GET /api/v1/dashboard/summary once, then pushes from ws/dashboard/:
 *   {type: "deployment", deployment: {...}}      one deployment as in the summary (active: false drops it)
 *   {type: "deployment.removed", name}
 *   {type: "run", run: {...}}                    a training run changed status
 *   {type: "run.progress", run: <id>, epoch, total_epochs, percent, eta_seconds, metrics}
 *   {type: "study", study: {...}}                a tuning study changed (trial finished, status)
 */
export const ACTIVE_RUN_STATUSES = new Set(["queued", "running"]);
export const ACTIVE_STUDY_STATUSES = new Set(["running", "paused"]);
const RECENT_RUNS = 20;

function upsert(list, item, key, keep) {
  const rest = (list || []).filter((x) => x[key] !== item[key]);
  if (!keep) return rest;
  const index = (list || []).findIndex((x) => x[key] === item[key]);
  if (index === -1) return [item, ...rest];
  const next = [...rest];
  next.splice(index, 0, { ...list[index], ...item });
  return next;
}

function patchRun(list, id, patch) {
  let changed = false;
  const next = (list || []).map((run) => {
    if (run.id !== id) return run;
    changed = true;
    return { ...run, ...patch };
  });
  return changed ? next : list;
}

export function applyPush(summary, msg) {
  if (!summary || !msg) return summary;
  switch (msg.type) {
    case "deployment": {
      const d = msg.deployment;
      if (!d?.name) return summary;
      return { ...summary, deployments: upsert(summary.deployments, d, "name", d.active !== false) };
    }
    case "deployment.removed":
      return { ...summary, deployments: (summary.deployments || []).filter((d) => d.name !== msg.name) };
    case "run": {
      const run = msg.run;
      if (run?.id == null) return summary;
      const recent = upsert(summary.recent_runs, run, "id", true)
        .sort((a, b) => b.id - a.id)
        .slice(0, RECENT_RUNS);
      return { ...summary, runs: upsert(summary.runs, run, "id", ACTIVE_RUN_STATUSES.has(run.status)), recent_runs: recent };
    }
    case "run.progress": {
      const id = Number(msg.run);
      const patch = {
        epoch: msg.epoch,
        total_epochs: msg.total_epochs,
        percent: msg.percent,
        eta_seconds: msg.eta_seconds,
        metrics: msg.metrics || {},
      };
      const runs = patchRun(summary.runs, id, { ...patch, status: "running" });
      const recent = patchRun(summary.recent_runs, id, patch);
      return runs === summary.runs && recent === summary.recent_runs ? summary : { ...summary, runs, recent_runs: recent };
    }
    case "study": {
      const study = msg.study;
      if (study?.id == null) return summary;
      return { ...summary, studies: upsert(summary.studies, study, "id", ACTIVE_STUDY_STATUSES.has(study.status)) };
    }
    default:
      return summary;
  }
}
