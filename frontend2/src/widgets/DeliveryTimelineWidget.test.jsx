import { act, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { fakeFetch, fakeSockets } from "../test/fakes";
import { DeliveryTimelineWidget, timelinePath } from "./DeliveryTimelineWidget";

const AT = "2026-01-05T10:00:00Z";
const step = (kind, what, extra = {}) => ({ step: kind, at: AT, actor: "delivery policy", what, reason: "", ...extra });

function chain(version, outcome, steps) {
  return { model_version_id: 100 + version, version, candidate: `prices v${version}`, outcome, steps };
}

const REGISTERED = [
  step("dataset_version", "prices v2 arrived (880 rows)", { actor: "demo" }),
  step("training_run", "run 7 queued (sklearn/linear)", { actor: "schedule" }),
  step("model_version", "prices v2 registered"),
];
const EVALUATED = [
  ...REGISTERED,
  step("evaluation", "evaluation 3 passed → rollout started", { reason: "accuracy 0.61 vs champion 0.55" }),
  step("rollout", "rollout 4: started (stage 1)"),
];
const PROMOTED = [...EVALUATED, step("rollout", "rollout 4: completed"), step("alias", "@champion: v1 → v2")];

describe("DeliveryTimelineWidget", () => {
  it("shows each candidate's chain with who did each step and why, and reloads on this deployment's push only", async () => {
    const ws = fakeSockets();
    let answer = [chain(2, "running", EVALUATED)];
    const fetchJson = fakeFetch({ [timelinePath("prices")]: () => answer });
    render(<DeliveryTimelineWidget deployment="prices" fetchJson={fetchJson} WebSocketImpl={ws.FakeWebSocket} pollMs={0} />);

    await waitFor(() => expect(screen.getByText(/evaluation 3 passed/)).toBeTruthy());
    expect(screen.getByText("accuracy 0.61 vs champion 0.55")).toBeTruthy();
    expect([...document.querySelectorAll("[data-step]")].map((li) => li.dataset.step)).toEqual([
      "dataset_version", "training_run", "model_version", "evaluation", "rollout",
    ]);
    expect(document.querySelector('[data-outcome="running"]').textContent).toBe("Running");
    expect(ws.last().url).toMatch(/\/ws\/deployments\/$/);

    act(() => ws.last().open());
    answer = [chain(2, "completed", PROMOTED)];
    act(() => ws.last().receive({ type: "deployment.changed", deployment: "other" }));
    expect(fetchJson.calls).toHaveLength(1); // another deployment's change is not ours

    act(() => ws.last().receive({ type: "deployment.changed", deployment: "prices" }));
    await waitFor(() => expect(screen.getByText(/@champion: v1 → v2/)).toBeTruthy());
    expect(fetchJson.calls).toHaveLength(2);
    expect(document.querySelector('[data-outcome="completed"]')).toBeTruthy();
  });

  it("asks again while an evaluation is pending (no push announces its verdict) and stops once it is decided", async () => {
    let calls = 0;
    const fetchJson = fakeFetch({
      [timelinePath("prices")]: () => (++calls < 3 ? [chain(3, "queued", REGISTERED)] : [chain(3, "rejected", REGISTERED)]),
    });
    class NoSocket { constructor() { this.readyState = 0; } close() {} }
    render(<DeliveryTimelineWidget deployment="prices" fetchJson={fetchJson} WebSocketImpl={NoSocket} pollMs={15} />);

    await waitFor(() => expect(document.querySelector('[data-outcome="rejected"]')).toBeTruthy());
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(fetchJson.calls).toHaveLength(3);
  });

  it("names the server's error with a retry, and follows the deployment picked from the list", async () => {
    const user = userEvent.setup();
    let failing = true;
    const fetchJson = fakeFetch({
      [timelinePath("prices")]: () => (failing ? Object.assign(new Error("No deployment named 'prices'."), { status: 404 }) : []),
      [timelinePath("rates")]: [chain(5, "rolled_back", PROMOTED)],
    });
    class NoSocket { constructor() { this.readyState = 0; } close() {} }
    render(<DeliveryTimelineWidget deployments={["prices", "rates"]} fetchJson={fetchJson} WebSocketImpl={NoSocket} />);

    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("No deployment named 'prices'."));
    failing = false;
    await user.click(screen.getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(screen.getByText(/No candidate has reached prices yet/)).toBeTruthy());

    await user.selectOptions(screen.getByRole("combobox"), "rates");
    await waitFor(() => expect(document.querySelector('[data-outcome="rolled_back"]').textContent).toBe("Rolled back"));
  });
});
