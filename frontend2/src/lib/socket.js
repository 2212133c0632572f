/**
 * A WebSocket that comes back after it is lost, with jittered exponential backoff.
 *
 * `url` is a function called before every (re)connect, so a caller can ask the server to resume
 * where it left off (the training log stream passes `?after=<last seq>`). States reported through
 * `onState`: "connecting", "open", "reconnecting", "refused" (the server said no: 4401/4403, not
 * retried) and "closed" (closed by the caller).
 */
export const REFUSED_CODES = new Set([4401, 4403]);

export function openReconnectingSocket({
  url,
  onMessage,
  onState = () => {},
  WebSocketImpl = globalThis.WebSocket,
  minDelayMs = 500,
  maxDelayMs = 15000,
  random = Math.random,
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (id) => clearTimeout(id),
}) {
  let socket = null;
  let timer = null;
  let attempts = 0;
  let stopped = false;

  const connect = () => {
    timer = null;
    if (stopped) return;
    onState(attempts === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocketImpl(url());
    } catch {
      scheduleRetry();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      attempts = 0;
      onState("open");
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      if (REFUSED_CODES.has(event?.code)) {
        stopped = true;
        onState("refused");
        return;
      }
      scheduleRetry();
    };
    // An error is always followed by close, which decides what happens next.
    ws.onerror = () => {};
  };

  const scheduleRetry = () => {
    if (stopped || timer !== null) return;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** attempts);
    attempts += 1;
    onState("reconnecting");
    timer = setTimer(connect, Math.round(base * (0.5 + random() / 2)));
  };

  connect();

  return {
    /** Drops the current connection and connects again now (used to backfill after a gap). */
    reconnectNow() {
      if (stopped) return;
      if (timer !== null) {
        clearTimer(timer);
        timer = null;
      }
      const old = socket;
      socket = null;
      if (old) old.close();
      connect();
    },
    send(data) {
      if (socket && socket.readyState === 1) socket.send(JSON.stringify(data));
    },
    close() {
      stopped = true;
      if (timer !== null) clearTimer(timer);
      timer = null;
      const old = socket;
      socket = null;
      if (old) old.close();
      onState("closed");
    },
  };
}
