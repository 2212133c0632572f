import { useEffect, useEffectEvent, useRef, useState } from "react";
import { wsUrl } from "./api";
import { openReconnectingSocket } from "./socket";

/**
 * Opens a reconnecting WebSocket for as long as `path` is set. `getPath` (optional) is called on every
 * reconnect so the caller can resume; the handlers are effect events, so they may change freely
 * without reopening the socket and always see the caller's latest render.
 * Returns [connection state, controls].
 */
export function useSocket({ path, getPath, onMessage, onOpen, WebSocketImpl, enabled = true }) {
  const [state, setState] = useState(enabled && path ? "connecting" : "idle");
  const controls = useRef(null);
  const nextPath = useEffectEvent(() => (getPath ? getPath() : path));
  const handleMessage = useEffectEvent((msg) => onMessage?.(msg));
  const handleOpen = useEffectEvent(() => onOpen?.());

  useEffect(() => {
    if (!enabled || !path) return undefined;
    const socket = openReconnectingSocket({
      url: () => wsUrl(nextPath()),
      WebSocketImpl: WebSocketImpl || globalThis.WebSocket,
      onMessage: (msg) => handleMessage(msg),
      onState: (s) => {
        if (s === "open") handleOpen();
        setState(s);
      },
    });
    controls.current = socket;
    return () => {
      controls.current = null;
      socket.close();
      // No socket until the next one reports "connecting" (and none at all when the path is gone).
      setState("idle");
    };
  }, [path, enabled, WebSocketImpl]);

  return [state, controls];
}
