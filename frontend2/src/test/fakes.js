/** A stand-in for the browser WebSocket that the test drives by hand. */
export function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedByClient = false;
      sockets.push(this);
    }

    open() {
      this.readyState = 1;
      this.onopen?.({});
    }

    receive(message) {
      this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
    }

    drop(code = 1006) {
      this.readyState = 3;
      this.onclose?.({ code });
    }

    send(data) {
      this.sent.push(data);
    }

    close() {
      this.readyState = 3;
      this.closedByClient = true;
      this.onclose?.({ code: 1000 });
    }
  }
  return { FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/**
 * fetchJson stand-in answering by path: a value, an Error to reject with, or a function of the path.
 * Records every call in `.calls`.
 */
export function fakeFetch(routes) {
  const calls = [];
  const fn = (path, options = {}) => {
    calls.push(path);
    const key = Object.keys(routes).find((k) => (k.endsWith("*") ? path.startsWith(k.slice(0, -1)) : path === k));
    if (key === undefined) return Promise.reject(Object.assign(new Error(`No route for ${path}`), { status: 404 }));
    let value = routes[key];
    if (typeof value === "function") value = value(path, options);
    return value instanceof Error ? Promise.reject(value) : Promise.resolve(structuredClone(value));
  };
  fn.calls = calls;
  return fn;
}
