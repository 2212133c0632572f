/**
 * The training log stream as a pure state machine, so the reconnect rules are unit-tested apart
 * from React and sockets.
 *
 * Server contract (ws/training/runs/<id>/?after=<seq>): on connect the server replays the stored
 * lines with seq > after, in order, then streams new ones; messages are
 *   {type: "run.log", seq, level, message, ts}
 *   {type: "run.progress", epoch, total_epochs, percent, eta_seconds, metrics}
 *   {type: "run.status", status}
 *
 * Rules that give "no gap, no duplicate":
 * - `lastSeq` is the highest seq with every line before it shown; a reconnect asks for after=lastSeq.
 * - A line with seq <= lastSeq is a duplicate (replay overlapping the live stream) and is dropped.
 * - The first line after a (re)connect starts the replay: the server has nothing between lastSeq
 *   and it, so it is accepted even when it skips numbers.
 * - Later in the same connection, a line that skips numbers is held back and `gap` is set; lines
 *   that fill the hole release it. The caller reconnects if the gap persists, and the replay fills it.
 */
export const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"];
export const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled", "pruned"]);
const MAX_LINES = 5000;

export function initialLogState(runId = null) {
  return {
    runId,
    lines: [],
    held: [],
    lastSeq: 0,
    gap: false,
    awaitingReplay: true,
    progress: null,
    history: [],
    attempt: null,
    status: null,
  };
}

export function logStreamPath(runId, state) {
  return `/ws/training/runs/${runId}/?after=${state.lastSeq}`;
}

export function normalizeLevel(level) {
  const upper = String(level || "INFO").toUpperCase();
  if (upper === "WARN") return "WARNING";
  if (upper === "CRITICAL" || upper === "FATAL") return "ERROR";
  return LEVELS.includes(upper) ? upper : "INFO";
}

function toLine(msg) {
  return { seq: Number(msg.seq), level: normalizeLevel(msg.level), message: String(msg.message ?? ""), ts: msg.ts ?? null };
}

function appendLines(lines, added) {
  const next = lines.concat(added);
  return next.length > MAX_LINES ? next.slice(next.length - MAX_LINES) : next;
}

/** Moves held lines that became contiguous into `lines`. */
function release(state) {
  let { lines, held, lastSeq } = state;
  const released = [];
  while (held.length && held[0].seq <= lastSeq + 1) {
    const [head, ...rest] = held;
    held = rest;
    if (head.seq === lastSeq + 1) {
      released.push(head);
      lastSeq = head.seq;
    }
  }
  if (released.length) lines = appendLines(lines, released);
  return { ...state, lines, held, lastSeq, gap: held.length > 0 };
}

function applyLog(state, msg) {
  const line = toLine(msg);
  if (!Number.isFinite(line.seq) || line.seq <= state.lastSeq) return state;
  if (state.held.some((h) => h.seq === line.seq)) return state;
  if (state.awaitingReplay || line.seq === state.lastSeq + 1) {
    // Accepting the head of a replay also accepts held lines it overtakes.
    const base = { ...state, awaitingReplay: false, lines: appendLines(state.lines, [line]), lastSeq: line.seq };
    base.held = state.held.filter((h) => h.seq > line.seq);
    return release(base);
  }
  const held = state.held.concat([line]).sort((a, b) => a.seq - b.seq);
  return { ...state, held, gap: true };
}

function applyProgress(state, msg) {
  const epoch = Number(msg.epoch);
  const progress = {
    epoch,
    total_epochs: msg.total_epochs == null ? null : Number(msg.total_epochs),
    percent: msg.percent == null ? null : Number(msg.percent),
    eta_seconds: msg.eta_seconds == null ? null : Number(msg.eta_seconds),
    metrics: msg.metrics || {},
  };
  // A redelivered run (new attempt) trains from scratch: its curves start again.
  const attempt = msg.attempt == null ? state.attempt : Number(msg.attempt);
  const restarted = state.attempt != null && attempt != null && attempt !== state.attempt;
  const history = upsertEpoch(restarted ? [] : state.history, epoch, progress.metrics);
  return { ...state, progress, history, attempt };
}

function upsertEpoch(history, epoch, metrics) {
  if (!Number.isFinite(epoch) || !metrics || !Object.keys(metrics).length) return history;
  const without = history.filter((h) => h.epoch !== epoch);
  return without.concat([{ epoch, metrics }]).sort((a, b) => a.epoch - b.epoch);
}

/** Reducer: actions are server messages plus {type: "connected"} and {type: "seed", run}. */
export function logReducer(state, action) {
  switch (action.type) {
    case "reset":
      return initialLogState(action.runId ?? null);
    case "connected":
      // The server replays after lastSeq; held lines are dropped because the replay resends them.
      return { ...state, awaitingReplay: true, held: [], gap: false };
    case "seed":
      return seedFromRun(state, action.run);
    case "run.log":
      return applyLog(state, action);
    case "run.progress":
      return applyProgress(state, action);
    case "run.status":
      return action.status && action.status !== state.status ? { ...state, status: action.status } : state;
    default:
      return state;
  }
}

/** Takes status, progress and the epoch history from the REST run detail (used after a page load). */
export function seedFromRun(state, run) {
  if (!run) return state;
  let history = state.history;
  const rows = Array.isArray(run.epochs) ? run.epochs : [];
  // Epochs of the latest attempt only, as the live stream shows.
  const attempt = rows.reduce((a, row) => (row.attempt != null && (a == null || row.attempt > a) ? row.attempt : a), null);
  for (const row of rows) {
    if (attempt != null && row.attempt != null && row.attempt !== attempt) continue;
    if (state.attempt != null && attempt != null && attempt !== state.attempt) continue;
    history = upsertEpoch(history, Number(row.epoch), row.metrics || {});
  }
  const progress = state.progress
    ?? (run.progress
      ? { epoch: run.progress.epoch ?? null, total_epochs: run.progress.total_epochs ?? null, percent: run.progress.percent ?? null, eta_seconds: run.progress.eta_seconds ?? null, metrics: run.progress.metrics || {} }
      : null);
  return { ...state, history, progress, attempt: state.attempt ?? attempt, status: state.status ?? run.status ?? null };
}

export function filterLines(lines, { levels, query }) {
  const needle = (query || "").trim().toLowerCase();
  return lines.filter(
    (line) => (!levels || levels.has(line.level)) && (!needle || line.message.toLowerCase().includes(needle)),
  );
}

/** Metric curves: one series per metric name, x = epoch. */
export function metricSeries(history) {
  const names = [];
  for (const row of history) for (const name of Object.keys(row.metrics)) if (!names.includes(name)) names.push(name);
  return names.map((name) => ({
    name,
    points: history
      .filter((row) => typeof row.metrics[name] === "number" && Number.isFinite(row.metrics[name]))
      .map((row) => ({ x: row.epoch, y: row.metrics[name] })),
  }));
}

export function formatEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}
