import { describe, expect, it } from "vitest";
import {
  filterLines,
  formatEta,
  initialLogState,
  logReducer,
  logStreamPath,
  metricSeries,
  normalizeLevel,
} from "./logStream";

const log = (seq, message = `line ${seq}`, level = "INFO") => ({ type: "run.log", seq, level, message, ts: "2025-01-01T00:00:00Z" });
const run = (state, ...actions) => actions.reduce(logReducer, state);
const seqs = (state) => state.lines.map((l) => l.seq);

describe("the log stream state", () => {
  it("asks for everything after the last contiguous line when it connects", () => {
    const state = run(initialLogState(7), { type: "connected" }, log(1), log(2), log(3));
    expect(logStreamPath(7, state)).toBe("/ws/training/runs/7/?after=3");
    expect(logStreamPath(7, initialLogState(7))).toBe("/ws/training/runs/7/?after=0");
  });

  it("drops lines it already has when a replay overlaps the live stream", () => {
    const state = run(initialLogState(1), { type: "connected" }, log(1), log(2), log(2), log(1), log(3));
    expect(seqs(state)).toEqual([1, 2, 3]);
  });

  it("returns the same state for a duplicate so nothing re-renders", () => {
    const state = run(initialLogState(1), { type: "connected" }, log(1));
    expect(logReducer(state, log(1))).toBe(state);
  });

  it("accepts the first replayed line even when numbers before it do not exist", () => {
    const state = run(initialLogState(1), { type: "connected" }, log(5), log(6));
    expect(seqs(state)).toEqual([5, 6]);
    expect(state.gap).toBe(false);
  });

  it("holds a line that skips numbers mid-stream and releases it when the hole is filled", () => {
    let state = run(initialLogState(1), { type: "connected" }, log(1), log(2), log(4), log(5));
    expect(seqs(state)).toEqual([1, 2]);
    expect(state.gap).toBe(true);
    expect(state.lastSeq).toBe(2);
    state = logReducer(state, log(3));
    expect(seqs(state)).toEqual([1, 2, 3, 4, 5]);
    expect(state.gap).toBe(false);
    expect(state.lastSeq).toBe(5);
  });

  it("backfills a hole by reconnecting after the last contiguous line: no gap, no duplicate", () => {
    // Live: 1, 2, then 5 arrives (3 and 4 were lost), then the socket drops.
    let state = run(initialLogState(3), { type: "connected" }, log(1), log(2), log(5));
    expect(logStreamPath(3, state)).toBe("/ws/training/runs/3/?after=2");
    // The server replays 3, 4, 5, 6 and then streams 6 again from the live group, then 7.
    state = run(state, { type: "connected" }, log(3), log(4), log(5), log(6), log(6), log(7));
    expect(seqs(state)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(state.gap).toBe(false);
  });

  it("keeps progress, the epoch history and the status apart from the lines", () => {
    const state = run(
      initialLogState(1),
      { type: "run.progress", epoch: 1, total_epochs: 3, percent: 33.3, eta_seconds: 20, metrics: { loss: 0.9, val_loss: 1.0 } },
      { type: "run.progress", epoch: 2, total_epochs: 3, percent: 66.7, eta_seconds: 10, metrics: { loss: 0.7, val_loss: 0.8 } },
      { type: "run.progress", epoch: 2, total_epochs: 3, percent: 66.7, eta_seconds: 10, metrics: { loss: 0.6, val_loss: 0.8 } },
      { type: "run.status", status: "succeeded" },
    );
    expect(state.progress).toMatchObject({ epoch: 2, total_epochs: 3, eta_seconds: 10 });
    expect(state.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(metricSeries(state.history)).toEqual([
      { name: "loss", points: [{ x: 1, y: 0.9 }, { x: 2, y: 0.6 }] },
      { name: "val_loss", points: [{ x: 1, y: 1.0 }, { x: 2, y: 0.8 }] },
    ]);
    expect(state.status).toBe("succeeded");
  });

  it("seeds the epoch history and status from the run detail without overriding live data", () => {
    let state = run(initialLogState(1), { type: "run.status", status: "running" });
    state = logReducer(state, {
      type: "seed",
      run: { status: "queued", epochs: [{ epoch: 1, metrics: { loss: 1 } }, { epoch: 2, metrics: { loss: 0.5 } }] },
    });
    expect(state.status).toBe("running");
    expect(state.history).toHaveLength(2);
  });

  it("starts the curves again when the run is redelivered to another worker (new attempt)", () => {
    const state = run(
      initialLogState(1),
      { type: "run.progress", epoch: 1, total_epochs: 2, percent: 50, metrics: { loss: 0.9 }, attempt: 1 },
      { type: "run.progress", epoch: 2, total_epochs: 2, percent: 100, metrics: { loss: 0.8 }, attempt: 1 },
      { type: "run.progress", epoch: 1, total_epochs: 2, percent: 50, metrics: { loss: 0.95 }, attempt: 2 },
    );
    expect(state.history).toEqual([{ epoch: 1, metrics: { loss: 0.95 } }]);
  });

  it("seeds only the latest attempt's epochs", () => {
    const state = logReducer(initialLogState(1), {
      type: "seed",
      run: { epochs: [{ attempt: 1, epoch: 1, metrics: { loss: 2 } }, { attempt: 2, epoch: 1, metrics: { loss: 1 } }] },
    });
    expect(state.history).toEqual([{ epoch: 1, metrics: { loss: 1 } }]);
    expect(state.attempt).toBe(2);
  });

  it("filters lines by level and by text, case-insensitively", () => {
    const state = run(initialLogState(1), { type: "connected" }, log(1, "Epoch 1 done"), log(2, "NaN loss", "warning"), log(3, "crash", "ERROR"));
    expect(filterLines(state.lines, { levels: new Set(["WARNING", "ERROR"]), query: "" }).map((l) => l.seq)).toEqual([2, 3]);
    expect(filterLines(state.lines, { levels: new Set(["INFO", "WARNING", "ERROR"]), query: "epoch" }).map((l) => l.seq)).toEqual([1]);
  });

  it("normalises level names and formats the ETA", () => {
    expect(normalizeLevel("warn")).toBe("WARNING");
    expect(normalizeLevel("critical")).toBe("ERROR");
    expect(normalizeLevel(undefined)).toBe("INFO");
    expect(formatEta(42)).toBe("42s");
    expect(formatEta(125)).toBe("2m 05s");
    expect(formatEta(3720)).toBe("1h 02m");
    expect(formatEta(null)).toBe("—");
  });
});
