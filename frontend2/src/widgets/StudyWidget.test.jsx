import { render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { StudyWidget, historySeries, studyPaths } from "./StudyWidget";

const HISTORY = [
  { number: 1, status: "completed", value: 0.6, best_value: 0.6, last_intermediate: 0.6, params: { alpha: 0.1 } },
  { number: 2, status: "pruned", value: 0.2, best_value: 0.6, last_intermediate: 0.2, params: { alpha: 0.2 } },
  { number: 3, status: "completed", value: 0.7, best_value: 0.7, last_intermediate: 0.7, params: { alpha: 0.3 } },
];

describe("StudyWidget", () => {
  it("plots completed trials only: a pruned value is where it stopped, not a score", () => {
    const [values, best] = historySeries(HISTORY);
    expect(values.points.map((p) => p.x)).toEqual([1, 3]);
    expect(best.points.map((p) => p.y)).toEqual([0.6, 0.7]);
  });

  it("shows the best params as a table and marks pruned trials as pruned", async () => {
    const paths = studyPaths(7);
    const answers = {
      [paths.detail]: { id: 7, name: "s", status: "running", n_finished: 3, max_trials: 8, n_running: 0,
        direction: "maximize", objective_metric: "accuracy", best_trial: { number: 3, value: 0.7, params: { alpha: 0.3 } } },
      [paths.history]: HISTORY,
      [paths.importances]: { importances: [{ param: "alpha", importance: 1 }] },
      [paths.parallel]: { dimensions: [], trials: [] },
    };
    const fetchJson = (path) => Promise.resolve(answers[path]);
    class NoSocket { constructor() { this.readyState = 0; } close() {} }
    render(<StudyWidget studyId={7} fetchJson={fetchJson} WebSocketImpl={NoSocket} />);
    await waitFor(() => expect(screen.getByText("Best parameters")).toBeTruthy());
    const table = screen.getByText("Best parameters").closest("table");
    expect(table.textContent).toContain("alpha");
    expect(table.textContent).toContain("0.3");
    expect(document.querySelector('tr[data-trial-status="pruned"]').textContent).toContain("pruned (last reported 0.2)");
    expect(screen.getByText(/1 pruned trial is not plotted/)).toBeTruthy();
  });
});
