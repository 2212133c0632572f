import { useEffect, useRef, useState } from "react";
import { wsUrl } from "./api";
import { openReconnectingSocket } from "./socket";

/**
 * Opens a reconnecting WebSocket for as long as `path` is set. `getPath` (optional) is called on every
 * reconnect so the caller can resume; handlers are read through refs so they may change freely.
 * Returns [connection state, controls].
 */
export function useSocket({ path, getPath, onMessage, onOpen, WebSocketImpl, enabled = true }) {
  const [state, setState] = useState(enabled && path ? "connecting" : "idle");
  const handlers = useRef({});
  handlers.current = { onMessage, onOpen, getPath };
  const controls = useRef(null);

  useEffect(() => {
    if (!enabled || !path) {
      setState("idle");
      return undefined;
    }
    const socket = openReconnectingSocket({
      url: () => wsUrl(handlers.current.getPath ? handlers.current.getPath() : path),
      WebSocketImpl: WebSocketImpl || globalThis.WebSocket,
      onMessage: (msg) => handlers.current.onMessage?.(msg),
      onState: (s) => {
        if (s === "open") handlers.current.onOpen?.();
        setState(s);
      },
    });
    controls.current = socket;
    return () => {
      controls.current = null;
      socket.close();
    };
  }, [path, enabled, WebSocketImpl]);

  return [state, controls];
}
