import { useCallback, useEffect, useId, useRef, useState } from "react";
import { getJson } from "../lib/api";
import { formatDateTime, humanize } from "../lib/format";
import { useSocket } from "../lib/useSocket";
import { ConnectionBadge } from "../components/ConnectionBadge";
import { Empty, ErrorBox, Loading } from "../components/States";

export const ALERTS_PATH = "/api/v1/alerts/events/?limit=30";
export const DASHBOARD_SOCKET_PATH = "/ws/dashboard/";

/** Newest first, one row per event id (a push may repeat an event the list already holds). */
function merge(events, event) {
  const rest = events.filter((e) => e.id !== event.id);
  return [event, ...rest].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : b.id - a.id));
}

/** A rule fires now when its newest event is a firing one. */
export function firingNow(events) {
  const newest = new Map();
  for (const e of events) {
    const seen = newest.get(e.rule_id);
    if (!seen || e.created_at > seen.created_at || (e.created_at === seen.created_at && e.id > seen.id)) newest.set(e.rule_id, e);
  }
  return [...newest.values()].filter((e) => e.kind === "firing");
}

function formatValue(value) {
  return value == null ? "no data" : Number(value.toPrecision(4)).toString();
}

function Deliveries({ deliveries }) {
  if (!deliveries?.length) return null;
  return (
    <span className="mlops-muted" data-testid="deliveries">
      {" · "}
      {deliveries
        .map((d) => `${d.webhook}: ${humanize(d.status)}${d.attempts > 1 ? ` after ${d.attempts} attempts` : ""}${d.status === "failed" && d.last_error ? ` (${d.last_error})` : ""}`)
        .join(", ")}
    </span>
  );
}

/**
 * Alert events of every deployment: the rules firing now on top, then the latest firing and
 * resolved events with their value, threshold and webhook deliveries (GET /api/v1/alerts/events/).
 * Inside the dashboard the page's own socket hands each {"type": "alert"} push in through `push`
 * and bumps `reloadKey` on a reconnect; on its own (push undefined) the widget opens ws/dashboard/
 * itself. A reconnect reloads the list, since what happened while the socket was down is not replayed.
 */
export function AlertsWidget({ fetchJson = getJson, WebSocketImpl, push, reloadKey = 0 }) {
  const ids = useId();
  const [events, setEvents] = useState(null);
  const [error, setError] = useState(null);
  const [retry, setRetry] = useState(0);

  const load = useCallback(
    (signal) =>
      fetchJson(ALERTS_PATH, { signal })
        .then((page) => {
          setEvents(page?.results || []);
          setError(null);
        })
        .catch((err) => {
          if (err?.name !== "AbortError") setError(err);
        }),
    [fetchJson],
  );

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load, retry, reloadKey]);

  const receive = useCallback((msg) => {
    if (msg?.type === "alert" && msg.alert) setEvents((list) => merge(list || [], msg.alert));
  }, []);

  // Each new push from the dashboard's socket is merged while rendering, as React advises for state
  // that follows a prop, rather than in an effect that would render the list a second time.
  const [mergedPush, setMergedPush] = useState(null);
  if (push && push !== mergedPush) {
    setMergedPush(push);
    receive(push);
  }

  const opened = useRef(false);
  const [connection] = useSocket({
    path: push === undefined ? DASHBOARD_SOCKET_PATH : null,
    WebSocketImpl,
    onMessage: receive,
    onOpen: () => {
      if (opened.current) load();
      opened.current = true;
    },
  });

  let body;
  if (error && !events) body = <ErrorBox error={error} onRetry={() => setRetry((n) => n + 1)} title="Could not load alerts" />;
  else if (!events) body = <Loading>Loading alerts…</Loading>;
  else {
    const firing = firingNow(events);
    body = (
      <>
        <h3>Firing now</h3>
        {firing.length === 0 ? (
          <Empty>No alert is firing.</Empty>
        ) : (
          <ul className="mlops-alerts__firing" aria-label="Firing alerts">
            {firing.map((e) => (
              <li key={e.rule_id} data-rule={e.rule}>
                <span className="mlops-badge mlops-badge--error">Firing</span> <strong>{e.rule}</strong> on {e.deployment}:{" "}
                {formatValue(e.value)} (threshold {formatValue(e.threshold)}) since{" "}
                <time dateTime={e.started_at}>{formatDateTime(e.started_at)}</time>
              </li>
            ))}
          </ul>
        )}
        <h3>Recent events</h3>
        {events.length === 0 ? (
          <Empty>No alert has fired yet. Staff add alert rules and webhooks in the admin.</Empty>
        ) : (
          <ol className="mlops-alerts__events" aria-label="Alert events">
            {events.map((e) => (
              <li key={e.id} data-kind={e.kind}>
                <time dateTime={e.created_at} className="mlops-muted">
                  {formatDateTime(e.created_at)}
                </time>{" "}
                <span className={`mlops-badge mlops-badge--${e.kind === "firing" ? "error" : "ok"}`}>{humanize(e.kind)}</span>{" "}
                {e.message}
                <Deliveries deliveries={e.deliveries} />
                {e.retrain_note && <div className="mlops-note">{e.retrain_note}</div>}
              </li>
            ))}
          </ol>
        )}
      </>
    );
  }

  return (
    <section className="mlops-card mlops-alerts" aria-labelledby={`${ids}-title`}>
      <header className="mlops-card__head">
        <h2 id={`${ids}-title`}>Alerts</h2>
        {push === undefined && <ConnectionBadge state={connection} label="Live" />}
      </header>
      {error && events && <ErrorBox error={error} onRetry={() => setRetry((n) => n + 1)} title="Showing older alerts" />}
      {body}
    </section>
  );
}

export default AlertsWidget;
