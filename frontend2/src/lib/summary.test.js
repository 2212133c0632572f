import { describe, expect, it } from "vitest";
import { applyPush } from "./summary";

const base = () => ({
  deployments: [{ name: "a", status: "active", versions: [{ label: "a v1", weight: 1 }] }],
  runs: [{ id: 3, status: "running", percent: 10 }],
  recent_runs: [{ id: 3, status: "running" }, { id: 2, status: "succeeded" }],
  studies: [{ id: 1, name: "s", status: "running", completed_trials: 1, n_trials: 5 }],
});

describe("pushed dashboard updates", () => {
  it("replaces a deployment in place and adds new ones first", () => {
    let s = applyPush(base(), { type: "deployment", deployment: { name: "a", status: "paused", versions: [] } });
    expect(s.deployments).toEqual([{ name: "a", status: "paused", versions: [] }]);
    s = applyPush(s, { type: "deployment", deployment: { name: "b", status: "active" } });
    expect(s.deployments.map((d) => d.name)).toEqual(["b", "a"]);
  });

  it("drops a deployment that is no longer active or was removed", () => {
    expect(applyPush(base(), { type: "deployment", deployment: { name: "a", active: false } }).deployments).toEqual([]);
    expect(applyPush(base(), { type: "deployment.removed", name: "a" }).deployments).toEqual([]);
  });

  it("moves a run out of the active list when it finishes but keeps it among the recent runs", () => {
    const s = applyPush(base(), { type: "run", run: { id: 3, status: "succeeded" } });
    expect(s.runs).toEqual([]);
    expect(s.recent_runs[0]).toMatchObject({ id: 3, status: "succeeded" });
  });

  it("adds a newly queued run to both lists, newest first", () => {
    const s = applyPush(base(), { type: "run", run: { id: 4, status: "queued" } });
    expect(s.runs.map((r) => r.id)).toEqual([4, 3]);
    expect(s.recent_runs.map((r) => r.id)).toEqual([4, 3, 2]);
  });

  it("patches the progress of a known run and ignores unknown ones", () => {
    const s = applyPush(base(), { type: "run.progress", run: 3, epoch: 2, total_epochs: 4, percent: 50, eta_seconds: 8, metrics: { loss: 1 } });
    expect(s.runs[0]).toMatchObject({ epoch: 2, percent: 50, eta_seconds: 8 });
    const same = base();
    expect(applyPush(same, { type: "run.progress", run: 99, epoch: 1 })).toBe(same);
  });

  it("updates a study and drops it when it is done", () => {
    let s = applyPush(base(), { type: "study", study: { id: 1, name: "s", status: "running", completed_trials: 2, n_trials: 5 } });
    expect(s.studies[0].completed_trials).toBe(2);
    s = applyPush(s, { type: "study", study: { id: 1, status: "completed" } });
    expect(s.studies).toEqual([]);
  });
});
