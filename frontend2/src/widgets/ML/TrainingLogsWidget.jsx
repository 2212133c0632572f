import { useCallback, useEffect, useId, useLayoutEffect, useMemo, useReducer, useRef, useState } from "react";
import { getJson } from "../../lib/api";
import { formatClock, humanize } from "../../lib/format";
import {
  LEVELS,
  TERMINAL_STATUSES,
  filterLines,
  formatEta,
  initialLogState,
  logReducer,
  logStreamPath,
  metricSeries,
} from "../../lib/logStream";
import { useSocket } from "../../lib/useSocket";
import { Chart } from "../../components/charts/Chart";
import { ConnectionBadge } from "../../components/ConnectionBadge";
import { ProgressBar } from "../../components/ProgressBar";
import { Empty, ErrorBox, Loading } from "../../components/States";

const NEWEST = "newest";
const SHOWN_LINES = 2000;

export function runLabel(run) {
  const what = [run.experiment, run.framework && run.model_type ? `${run.framework}/${run.model_type}` : run.framework]
    .filter(Boolean)
    .join(" · ");
  return `#${run.id}${what ? ` ${what}` : ""}${run.status ? ` (${humanize(run.status)})` : ""}`;
}

export function newestRun(runs) {
  return (runs || []).reduce((best, run) => (best === null || run.id > best.id ? run : best), null);
}

/** The run id a "Watch the log" pick names, as the run picker's value; null for no pick. */
function pickedRun(select) {
  return select?.id != null ? String(select.id) : null;
}

/** Groups metric series by base name so "loss" and "val_loss" share a chart and scale. */
function metricGroups(history) {
  const groups = new Map();
  for (const series of metricSeries(history)) {
    const base = series.name.replace(/^(train|training|val|valid|validation|test)[_/]/, "");
    if (!groups.has(base)) groups.set(base, []);
    groups.get(base).push(series);
  }
  return [...groups.entries()];
}

/**
 * The log of one training run, live: pick a run (or follow the newest), watch progress, metric
 * curves and log lines, filter by level or text. Reconnects resume after the last line seen.
 */
export function TrainingLogsWidget({
  runId: fixedRunId = null,
  runs: givenRuns = null,
  fetchJson = getJson,
  WebSocketImpl,
  gapGraceMs = 1500,
  title = "Training logs",
  select = null,
}) {
  const ids = useId();
  const [fetchedRuns, setFetchedRuns] = useState(null);
  const [runsError, setRunsError] = useState(null);
  const [choice, setChoice] = useState(() => pickedRun(select) ?? NEWEST);
  const runs = givenRuns ?? fetchedRuns;

  // The dashboard's "Watch the log" buttons pick a run from outside ({id} objects, new each click).
  // A new pick is taken while rendering, as React advises for state that follows a prop.
  const [seenSelect, setSeenSelect] = useState(select);
  if (select !== seenSelect) {
    setSeenSelect(select);
    if (pickedRun(select) != null) setChoice(pickedRun(select));
  }

  const loadRuns = useCallback(() => {
    fetchJson("/api/v1/dashboard/summary")
      .then((summary) => {
        setFetchedRuns(summary.recent_runs || []);
        setRunsError(null);
      })
      .catch((err) => setRunsError(err));
  }, [fetchJson]);

  useEffect(() => {
    if (fixedRunId == null && givenRuns == null) loadRuns();
  }, [fixedRunId, givenRuns, loadRuns]);

  const retryRuns = () => {
    setRunsError(null);
    loadRuns();
  };

  const runId = useMemo(() => {
    if (fixedRunId != null) return Number(fixedRunId);
    if (choice !== NEWEST) return Number(choice);
    return newestRun(runs)?.id ?? null;
  }, [fixedRunId, choice, runs]);

  const [state, dispatch] = useReducer(logReducer, runId, initialLogState);
  const [seedError, setSeedError] = useState(null);
  // Another run starts from an empty log, reset while rendering so no render shows the old run's lines.
  if (state.runId !== runId) {
    dispatch({ type: "reset", runId });
    setSeedError(null);
  }

  useEffect(() => {
    if (runId == null) return undefined;
    let live = true;
    fetchJson(`/api/v1/runs/${runId}/epochs`)
      .then((epochs) => live && dispatch({ type: "seed", run: { epochs } }))
      .catch((err) => live && setSeedError(err));
    return () => {
      live = false;
    };
  }, [runId, fetchJson]);

  const finished = TERMINAL_STATUSES.has(state.status);
  const [connection, socket] = useSocket({
    path: runId == null ? null : logStreamPath(runId, initialLogState(runId)),
    // Resume after the last line seen (useSocket calls this with the latest render's state).
    getPath: () => logStreamPath(runId, state),
    onOpen: () => dispatch({ type: "connected" }),
    onMessage: (msg) => dispatch(msg),
    WebSocketImpl,
  });

  // A finished run's stream has nothing more to say: stop retrying once it is gone.
  useEffect(() => {
    if (finished && connection === "reconnecting") socket.current?.close();
  }, [finished, connection, socket]);

  // A hole that lines in flight do not fill is closed by reconnecting: the replay resends it.
  useEffect(() => {
    if (!state.gap) return undefined;
    const timer = setTimeout(() => socket.current?.reconnectNow(), gapGraceMs);
    return () => clearTimeout(timer);
  }, [state.gap, state.lastSeq, gapGraceMs, socket]);

  const [levels, setLevels] = useState(() => new Set(LEVELS));
  const [query, setQuery] = useState("");
  const shown = useMemo(() => filterLines(state.lines, { levels, query }), [state.lines, levels, query]);
  const visible = shown.length > SHOWN_LINES ? shown.slice(shown.length - SHOWN_LINES) : shown;

  const pane = useRef(null);
  const [paused, setPaused] = useState(false);
  const [unseen, setUnseen] = useState(0);
  const lastCount = useRef(0);

  useLayoutEffect(() => {
    const el = pane.current;
    const added = Math.max(0, shown.length - lastCount.current);
    lastCount.current = shown.length;
    if (!el) return;
    if (paused) setUnseen((n) => n + added);
    else el.scrollTop = el.scrollHeight;
  }, [shown, paused]);

  const onScroll = () => {
    const el = pane.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    setPaused(!atBottom);
    if (atBottom) setUnseen(0);
  };

  const resume = () => {
    setPaused(false);
    setUnseen(0);
    if (pane.current) pane.current.scrollTop = pane.current.scrollHeight;
  };

  const toggleLevel = (level) =>
    setLevels((prev) => {
      const next = new Set(prev);
      if (next.has(level)) next.delete(level);
      else next.add(level);
      return next;
    });

  const progress = state.progress;
  const progressDetail = progress
    ? [
        progress.total_epochs ? `Epoch ${progress.epoch} of ${progress.total_epochs}` : `Epoch ${progress.epoch}`,
        Number.isFinite(progress.percent) ? `${Math.round(progress.percent)}%` : null,
        finished ? null : `ETA ${formatEta(progress.eta_seconds)}`,
      ]
        .filter(Boolean)
        .join(" · ")
    : null;
  const groups = metricGroups(state.history);

  let body;
  if (runId == null) {
    if (runsError) body = <ErrorBox error={runsError} onRetry={retryRuns} title="Could not load the runs" />;
    else if (runs == null) body = <Loading>Loading runs…</Loading>;
    else body = <Empty>No training runs yet. Start one from an experiment in the admin (Train now).</Empty>;
  } else {
    body = (
      <>
        <div className="mlops-logs__status">
          <span className={`mlops-pill mlops-pill--${state.status || "unknown"}`}>{humanize(state.status || "waiting")}</span>
          <ProgressBar
            label={`Log view: run ${runId} progress`}
            percent={progress?.percent ?? (state.status === "succeeded" ? 100 : null)}
            detail={progressDetail || (finished ? "Finished" : "Waiting for the first epoch…")}
          />
        </div>
        {groups.length > 0 && (
          <div className="mlops-grid mlops-grid--charts">
            {groups.map(([base, series]) => (
              <Chart key={base} title={`${humanize(base)} by epoch`} series={series} height={150} xIntegers xFormat={(v) => String(v)} />
            ))}
          </div>
        )}
        {seedError && groups.length === 0 && (
          <p className="mlops-note">Earlier epochs are not available ({seedError.message}); new ones appear live.</p>
        )}
        <div className="mlops-logs__pane-wrap">
          {/* The scroll box carries role="log": on the <ol> it would hide the list from its <li>s. */}
          <div
            ref={pane}
            className="mlops-logs__pane"
            role="log"
            aria-live="polite"
            aria-label={`Log of run ${runId}`}
            tabIndex={0}
            onScroll={onScroll}
          >
            <ol className="mlops-logs__lines">
              {visible.length === 0 ? (
                <li className="mlops-logs__placeholder">
                  {state.lines.length ? "No line matches the filter." : connection === "open" ? "Waiting for log lines…" : "No log lines yet."}
                </li>
              ) : (
                visible.map((line) => (
                  <li key={line.seq} className={`mlops-log mlops-log--${line.level.toLowerCase()}`} data-seq={line.seq}>
                    <span className="mlops-log__time">{formatClock(line.ts)}</span>
                    <span className="mlops-log__level">{line.level}</span>
                    <span className="mlops-log__msg">{line.message}</span>
                  </li>
                ))
              )}
            </ol>
          </div>
          {paused && (
            <button type="button" className="mlops-btn mlops-btn--primary mlops-logs__resume" onClick={resume}>
              Auto-scroll paused{unseen ? ` · ${unseen} new` : ""} · Jump to latest
            </button>
          )}
        </div>
      </>
    );
  }

  return (
    <section className="mlops-card mlops-logs" aria-labelledby={`${ids}-title`}>
      <header className="mlops-card__head">
        <h2 id={`${ids}-title`}>{title}{fixedRunId != null ? ` · run #${fixedRunId}` : ""}</h2>
        {runId != null && <ConnectionBadge state={finished && connection !== "open" ? "finished" : connection} />}
      </header>
      <div className="mlops-toolbar">
        {fixedRunId == null && (
          <label className="mlops-field">
            <span>Run</span>
            <select value={choice} onChange={(e) => setChoice(e.target.value)} disabled={!runs?.length}>
              <option value={NEWEST}>Follow the newest run{runs?.length ? ` (#${newestRun(runs).id})` : ""}</option>
              {(runs || []).map((run) => (
                <option key={run.id} value={String(run.id)}>
                  {runLabel(run)}
                </option>
              ))}
            </select>
          </label>
        )}
        <label className="mlops-field mlops-field--grow">
          <span>Search</span>
          <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Filter log lines" />
        </label>
        <fieldset className="mlops-levels">
          <legend>Levels</legend>
          {LEVELS.map((level) => (
            <button
              key={level}
              type="button"
              className={`mlops-chip mlops-chip--${level.toLowerCase()}`}
              aria-pressed={levels.has(level)}
              onClick={() => toggleLevel(level)}
            >
              {humanize(level.toLowerCase())}
            </button>
          ))}
        </fieldset>
      </div>
      {body}
    </section>
  );
}

export default TrainingLogsWidget;
