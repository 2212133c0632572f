import { describe, expect, it } from "vitest";
import { fakeSockets } from "../test/fakes";
import { openReconnectingSocket } from "./socket";

function harness(overrides = {}) {
  const { FakeWebSocket, sockets, last } = fakeSockets();
  const timers = [];
  const states = [];
  const messages = [];
  let n = 0;
  const socket = openReconnectingSocket({
    url: () => `ws://x/stream/?after=${n}`,
    onMessage: (m) => messages.push(m),
    onState: (s) => states.push(s),
    WebSocketImpl: FakeWebSocket,
    random: () => 1,
    setTimer: (fn, ms) => timers.push({ fn, ms }) - 1,
    clearTimer: (id) => {
      timers[id] = null;
    },
    ...overrides,
  });
  const fire = () => {
    const t = timers.findLast((x) => x);
    timers[timers.indexOf(t)] = null;
    t.fn();
    return t.ms;
  };
  return { socket, sockets, last, timers, states, messages, fire, setN: (v) => (n = v) };
}

describe("the reconnecting socket", () => {
  it("passes parsed messages on and ignores what is not JSON", () => {
    const h = harness();
    h.last().open();
    h.last().receive({ type: "x" });
    h.last().receive("not json");
    expect(h.messages).toEqual([{ type: "x" }]);
    expect(h.states).toEqual(["connecting", "open"]);
  });

  it("reconnects with growing delays and a fresh URL each time", () => {
    const h = harness();
    h.last().open();
    h.setN(5);
    h.last().drop();
    expect(h.states.at(-1)).toBe("reconnecting");
    expect(h.fire()).toBe(500);
    expect(h.last().url).toBe("ws://x/stream/?after=5");
    h.last().drop();
    expect(h.fire()).toBe(1000);
    h.last().drop();
    expect(h.fire()).toBe(2000);
    h.last().open();
    h.last().drop();
    expect(h.fire()).toBe(500);
    expect(h.sockets).toHaveLength(5);
  });

  it("stops when the server refuses the user", () => {
    const h = harness();
    h.last().drop(4403);
    expect(h.states.at(-1)).toBe("refused");
    expect(h.timers.filter(Boolean)).toHaveLength(0);
  });

  it("stops for good once closed, and ignores the old socket's late events", () => {
    const h = harness();
    const first = h.last();
    first.open();
    h.socket.close();
    expect(first.closedByClient).toBe(true);
    first.receive({ type: "late" });
    expect(h.messages).toEqual([]);
    expect(h.timers.filter(Boolean)).toHaveLength(0);
    expect(h.states.at(-1)).toBe("closed");
  });

  it("reconnects at once on request, dropping the current socket", () => {
    const h = harness();
    const first = h.last();
    first.open();
    h.setN(9);
    h.socket.reconnectNow();
    expect(first.closedByClient).toBe(true);
    expect(h.sockets).toHaveLength(2);
    expect(h.last().url).toBe("ws://x/stream/?after=9");
  });
});
