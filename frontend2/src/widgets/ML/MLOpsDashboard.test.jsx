import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { fakeFetch, fakeSockets } from "../../test/fakes";
import { MLOpsDashboard } from "./MLOpsDashboard";

const DEPLOYMENT = {
  name: "price-direction",
  status: "rolling_out",
  active: true,
  versions: [
    { id: 1, model_version_id: 11, label: "price-direction v1", version: 1, role: "champion", weight: 90, shadow: false, framework: "torch", model_type: "mlp" },
    { id: 2, model_version_id: 12, label: "price-direction v2", version: 2, role: "challenger", weight: 10, shadow: false, framework: "keras", model_type: "mlp" },
  ],
  rollout: {
    id: 4,
    status: "running",
    stage_index: 0,
    stage: 10,
    stages: [10, 50, 100],
    champion: "price-direction v1",
    challenger: "price-direction v2",
    decision: "hold",
    decision_reason: "waiting on min_predictions",
    gates: [
      { name: "min_predictions", label: "Challenger predictions in this stage", state: "pending", value: 150, threshold: 200, detail: "150 of 200" },
      { name: "error_rate", state: "pass", value: 0.01, threshold: 0.02, detail: "2 errors in 200 requests" },
      { name: "accuracy_vs_champion", state: "fail", value: null, threshold: 0.05, detail: "challenger worse" },
    ],
  },
  events: [{ id: 1, kind: "rollout_started", label: "Rollout started", reason: "challenger at 10%", actor: "staff", created_at: "2025-01-01T10:00:00Z" }],
  actions: { promote: true, pause: true, resume: false, rollback: true },
};

const SUMMARY = {
  deployments: [DEPLOYMENT],
  runs: [{ id: 12, experiment: "returns", framework: "keras", model_type: "lstm", status: "running", epoch: 1, total_epochs: 3, percent: 33, eta_seconds: 40, metrics: { loss: 0.5 } }],
  recent_runs: [{ id: 12, experiment: "returns", framework: "keras", model_type: "lstm", status: "running" }],
  studies: [{ id: 3, name: "lr search", strategy: "bayesian", status: "running", n_trials: 10, completed_trials: 4, running_trials: 1, best_value: 0.61, metric: "accuracy" }],
};

function setup({ me = { username: "staff", role: "ML Staff", can_act: true }, routes = {}, sendJson } = {}) {
  const ws = fakeSockets();
  const fetchJson = fakeFetch({
    "/api/v1/me": me,
    "/api/v1/dashboard/summary": SUMMARY,
    "/api/v1/monitoring/*": { metric: "accuracy", versions: [] },
    "/api/v1/runs/*": [],
    ...routes,
  });
  const send = sendJson || vi.fn(() => Promise.resolve({ status: "ok" }));
  render(<MLOpsDashboard fetchJson={fetchJson} sendJson={send} WebSocketImpl={ws.FakeWebSocket} />);
  const dashboardSocket = () => ws.sockets.find((s) => s.url.endsWith("/ws/dashboard/"));
  return { ws, fetchJson, send, dashboardSocket };
}

const card = () => screen.getByRole("article", { name: "price-direction" });

describe("MLOpsDashboard", () => {
  it("shows deployments with versions, traffic split, rollout stage, gates and last events", async () => {
    setup();
    await screen.findByRole("heading", { name: "Deployments" });
    const c = card();
    expect(within(c).getAllByTestId("weight").map((td) => td.textContent)).toEqual(["90%", "10%"]);
    expect(within(c).getByRole("img", { name: "Traffic split: price-direction v1 90%, price-direction v2 10%" })).toBeInTheDocument();
    expect(c.querySelector(".mlops-rollout__stage")).toHaveTextContent("Rollout Running stage 10% (1 of 3) · price-direction v2 challenging price-direction v1");
    expect(within(c).getByRole("list", { name: "Rollout stages" }).querySelector("[aria-current=step]")).toHaveTextContent("10%");
    const gates = within(within(c).getByRole("list", { name: "Gates of this stage" })).getAllByRole("listitem");
    expect(gates.map((g) => g.textContent)).toEqual([
      "…Challenger predictions in this stage150 of 200 (pending)",
      "✓Error rate2 errors in 200 requests (limit 2.0%) (passing)",
      "✗Accuracy vs championchallenger worse (failing)",
    ]);
    expect(within(c).getByText(/Gates: waiting on min_predictions/)).toBeInTheDocument();
    expect(within(c).getByText(/Rollout started/).closest("li")).toHaveTextContent("Rollout started: challenger at 10% · staff");
  });

  it("shows a gate that has not decided as pending, in the neutral style and without a check mark", async () => {
    // As the API sends it for a rollout that has had traffic but no feedback yet.
    const waiting = {
      name: "accuracy_vs_champion",
      label: "Accuracy vs the champion",
      state: "pending",
      value: null,
      threshold: 0.05,
      detail: "not decided yet: needs 50 labelled rows per version since the rollout began (champion 0, challenger 0)",
    };
    const stalled = { ...DEPLOYMENT, rollout: { ...DEPLOYMENT.rollout, decision_reason: "waiting on accuracy_vs_champion", gates: [waiting] } };
    setup({ routes: { "/api/v1/dashboard/summary": { ...SUMMARY, deployments: [stalled] } } });
    await screen.findByRole("heading", { name: "Deployments" });
    const [gate] = within(within(card()).getByRole("list", { name: "Gates of this stage" })).getAllByRole("listitem");
    expect(gate).toHaveClass("mlops-gate--pending");
    expect(gate).not.toHaveClass("mlops-gate--pass");
    expect(gate.querySelector(".mlops-gate__icon")).toHaveTextContent("…");
    expect(gate.textContent).not.toMatch(/✓|passing/);
    expect(gate).toHaveTextContent(
      "Accuracy vs the championnot decided yet: needs 50 labelled rows per version since the rollout began (champion 0, challenger 0) (pending)",
    );
  });

  it("reads a gate in a state it does not know as pending, not as passing", async () => {
    const odd = { ...DEPLOYMENT, rollout: { ...DEPLOYMENT.rollout, gates: [{ name: "min_feedback", state: "toString", detail: "0 of 300" }] } };
    setup({ routes: { "/api/v1/dashboard/summary": { ...SUMMARY, deployments: [odd] } } });
    await screen.findByRole("heading", { name: "Deployments" });
    const [gate] = within(within(card()).getByRole("list", { name: "Gates of this stage" })).getAllByRole("listitem");
    expect(gate).toHaveClass("mlops-gate--pending");
    expect(gate).toHaveTextContent("…Min feedback0 of 300 (pending)");
  });

  it("shows running training runs and tuning studies with their progress", async () => {
    setup();
    expect(await screen.findByRole("progressbar", { name: "Run 12 progress" })).toHaveAttribute("aria-valuenow", "33");
    expect(screen.getByText(/Epoch 1\/3 · 33% · ETA 40s · loss 0.5/)).toBeInTheDocument();
    expect(screen.getByRole("progressbar", { name: "Study lr search progress" })).toHaveAttribute("aria-valuenow", "40");
    expect(screen.getByText(/4 of 10 trials, 1 running · best accuracy 0.61/)).toBeInTheDocument();
  });

  it("disables the actions the rollout's state does not allow and offers resume when paused", async () => {
    const paused = { ...DEPLOYMENT, status: "paused", rollout: { ...DEPLOYMENT.rollout, status: "paused" }, actions: { promote: true, pause: false, resume: true, rollback: true } };
    setup({ routes: { "/api/v1/dashboard/summary": { ...SUMMARY, deployments: [paused] } } });
    await screen.findByRole("heading", { name: "Deployments" });
    expect(within(card()).getByRole("button", { name: "Pause" })).toBeDisabled();
    expect(within(card()).getByRole("button", { name: "Pause" })).toHaveAttribute("title", "Pause needs a running rollout");
    expect(within(card()).getByRole("button", { name: "Resume" })).toBeEnabled();
    expect(within(card()).getByRole("button", { name: "Roll back" })).toBeEnabled();
  });

  it("gives staff the actions behind a confirmation that posts to the deployment", async () => {
    const user = userEvent.setup();
    const { send } = setup();
    await screen.findByRole("heading", { name: "Deployments" });
    await user.click(within(card()).getByRole("button", { name: "Roll back" }));
    const dialog = screen.getByRole("dialog", { name: "Roll back price-direction?" });
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    await user.type(within(dialog).getByLabelText(/Reason/), "challenger is worse");
    await user.click(within(dialog).getByRole("button", { name: "Roll back" }));
    expect(send).toHaveBeenCalledWith("/api/v1/deployments/price-direction/rollout/rollback", { stage: 0, reason: "challenger is worse" });
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(screen.getByText("Roll back: done for price-direction.")).toBeInTheDocument();
  });

  it("keeps the dialog open with the server's message when an action is refused, and Escape closes it", async () => {
    const user = userEvent.setup();
    const send = vi.fn(() => Promise.reject(new Error("rollout 4 is at stage 2 (50%) now, not stage 1; someone acted first — reload and decide again")));
    setup({ sendJson: send });
    await screen.findByRole("heading", { name: "Deployments" });
    await user.click(within(card()).getByRole("button", { name: "Promote" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Promote" }));
    expect(await within(screen.getByRole("dialog")).findByRole("alert")).toHaveTextContent("someone acted first");
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("shows analysts no action buttons", async () => {
    setup({ me: { username: "ana", role: "Analyst", can_act: false } });
    await screen.findByRole("heading", { name: "Deployments" });
    for (const name of ["Promote", "Pause", "Roll back"]) expect(within(card()).queryByRole("button", { name })).not.toBeInTheDocument();
    expect(screen.getByText(/read only/)).toBeInTheDocument();
  });

  it("applies pushed rollout changes without fetching again", async () => {
    const { dashboardSocket, fetchJson } = setup();
    await screen.findByRole("heading", { name: "Deployments" });
    await waitFor(() => expect(dashboardSocket()).toBeDefined());
    const summaryCalls = () => fetchJson.calls.filter((p) => p === "/api/v1/dashboard/summary").length;
    act(() => dashboardSocket().open());
    const promoted = {
      ...DEPLOYMENT,
      versions: [{ ...DEPLOYMENT.versions[0], weight: 50 }, { ...DEPLOYMENT.versions[1], weight: 50 }],
      rollout: { ...DEPLOYMENT.rollout, stage: 50, stage_index: 1 },
    };
    act(() => dashboardSocket().receive({ type: "deployment", deployment: promoted }));
    expect(within(card()).getAllByTestId("weight").map((td) => td.textContent)).toEqual(["50%", "50%"]);
    expect(card().querySelector(".mlops-rollout__stage")).toHaveTextContent("stage 50% (2 of 3)");
    act(() => dashboardSocket().receive({ type: "run", run: { id: 12, status: "succeeded" } }));
    expect(screen.getByText("No training run is queued or running.")).toBeInTheDocument();
    expect(summaryCalls()).toBe(1);
  });

  it("reports a lost connection and catches up once it is back", async () => {
    const { dashboardSocket, fetchJson, ws } = setup();
    await screen.findByRole("heading", { name: "Deployments" });
    await waitFor(() => expect(dashboardSocket()).toBeDefined());
    act(() => dashboardSocket().open());
    expect(screen.getByText("Live updates: Live")).toBeInTheDocument();
    act(() => dashboardSocket().drop());
    expect(screen.getByText("Live updates: Connection lost, reconnecting…")).toBeInTheDocument();
    await waitFor(() => expect(ws.sockets.filter((s) => s.url.endsWith("/ws/dashboard/"))).toHaveLength(2));
    act(() => ws.sockets.filter((s) => s.url.endsWith("/ws/dashboard/"))[1].open());
    await waitFor(() => expect(fetchJson.calls.filter((p) => p === "/api/v1/dashboard/summary")).toHaveLength(2));
  });

  it("shows the error when the server is down and loads on retry", async () => {
    const user = userEvent.setup();
    let down = true;
    setup({ routes: { "/api/v1/dashboard/summary": () => (down ? new Error("The server cannot be reached.") : SUMMARY) } });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The dashboard could not load: The server cannot be reached.");
    down = false;
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("heading", { name: "Deployments" })).toBeInTheDocument();
  });

  it("shows empty states when nothing is deployed or running", async () => {
    setup({ routes: { "/api/v1/dashboard/summary": { deployments: [], runs: [], recent_runs: [], studies: [] } } });
    expect(await screen.findByText(/No active deployment. Deploy/)).toBeInTheDocument();
    expect(screen.getByText("No training run is queued or running.")).toBeInTheDocument();
    expect(screen.getByText("No tuning study is running.")).toBeInTheDocument();
    expect(screen.getByText("No active deployment to watch yet.")).toBeInTheDocument();
    expect(screen.getByText(/No training runs yet/)).toBeInTheDocument();
  });
});
