import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { fakeFetch } from "../../test/fakes";
import { ModelPerformanceWidget } from "./ModelPerformanceWidget";

const point = (minute, extra) => ({
  t: `2025-01-01T10:${String(minute).padStart(2, "0")}:00Z`,
  count: 100,
  errors: 2,
  error_rate: 0.02,
  p50_ms: 4,
  p95_ms: 9,
  p99_ms: 15,
  ...extra,
});

const SERIES = {
  deployment: "price-direction",
  window: "24h",
  versions: [
    { model_version_id: 2, version: "2", role: "challenger", weight: 10, task: "classification", points: [point(0, { accuracy: 0.61 }), point(5, { accuracy: 0.63, count: 12, errors: 0, error_rate: 0 })] },
    { model_version_id: 1, version: "1", role: "champion", weight: 90, task: "classification", points: [point(0, { accuracy: 0.58 }), point(5, { accuracy: 0.57 })] },
  ],
};

const WINDOW = {
  deployment: "price-direction",
  window: "24h",
  versions: [
    { model_version_id: 1, version: "1", role: "champion", weight: 90, requests: 200, server_errors: 4, error_rate: 0.02, p50_ms: 4.5, p95_ms: 9.5, p99_ms: 16, feedback_rows: 120, accuracy: 0.575, rmse: null, drift: { close: { psi: 0.04, served_values: 90 }, volume: { psi: 0.31, served_values: 90 } } },
    { model_version_id: 2, version: "2", role: "challenger", weight: 10, requests: 112, server_errors: 2, error_rate: 0.0179, p50_ms: 4, p95_ms: 9, p99_ms: 15, feedback_rows: 60, accuracy: 0.62, rmse: null, drift: {} },
  ],
};

describe("ModelPerformanceWidget", () => {
  it("warns about drifted features, naming the version, the feature and its PSI", async () => {
    const drifted = {
      ...WINDOW,
      versions: [
        { ...WINDOW.versions[0], drift_warnings: [{ feature: "volume", psi: 0.31, js: 0.08, served_values: 900, level: "alert" }] },
        { ...WINDOW.versions[1], drift_warnings: [] },
      ],
    };
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/price-direction/series?window=1h": SERIES,
      "/api/v1/monitoring/deployments/price-direction/summary?window=1h": drifted,
    });
    render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} />);
    const warning = await screen.findByRole("alert");
    expect(warning).toHaveTextContent("Feature drift alert");
    expect(warning).toHaveTextContent("v1 · volume: PSI 0.31 (alert)");
  });

  it("shows no drift warning while no feature is past the threshold", async () => {
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/price-direction/series?window=1h": SERIES,
      "/api/v1/monitoring/deployments/price-direction/summary?window=1h": WINDOW,
    });
    render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} />);
    await screen.findByRole("table", { name: /Champion vs challenger/ });
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows champion and challenger side by side with accuracy, latency, volume and error rate", async () => {
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/price-direction/series?window=1h": SERIES,
      "/api/v1/monitoring/deployments/price-direction/summary?window=1h": WINDOW,
    });
    render(<ModelPerformanceWidget deployments={[{ name: "price-direction" }]} fetchJson={fetchJson} />);
    const table = await screen.findByRole("table", { name: /Champion vs challenger/ });
    const headers = within(table).getAllByRole("columnheader").map((th) => th.textContent);
    expect(headers).toEqual(["Measure", "v1", "v2"]);
    const row = (name) => within(table).getByRole("rowheader", { name }).closest("tr");
    const cells = (name) => within(row(name)).getAllByRole("cell").map((c) => c.textContent);
    expect(cells("Role")).toEqual(["Champion", "Challenger"]);
    expect(cells("Traffic weight")).toEqual(["90%", "10%"]);
    expect(cells("Requests")).toEqual(["200", "112"]);
    expect(cells("Error rate")).toEqual(["2.0%", "1.8%"]);
    expect(cells("Accuracy")).toEqual(["57%", "62%"]);
    expect(cells("Labelled rows")).toEqual(["120", "60"]);
    expect(cells("Latency p99")).toEqual(["16 ms", "15 ms"]);
    expect(cells("Max feature drift (PSI)")).toEqual(["0.31", "—"]);
    for (const title of ["Accuracy over time", "Requests per bucket", "Error rate", "Latency of v1 (ms)", "Latency of v2 (ms)"]) {
      expect(screen.getByRole("img", { name: title })).toBeInTheDocument();
    }
    expect(screen.getByRole("img", { name: "Requests per bucket" }).querySelectorAll("rect")).toHaveLength(4);
  });

  it("loads the chosen time window", async () => {
    const user = userEvent.setup();
    const fetchJson = fakeFetch({ "/api/v1/monitoring/deployments/*": SERIES });
    render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} />);
    await screen.findByRole("table");
    await user.click(screen.getByRole("radio", { name: "7 days" }));
    await waitFor(() => expect(fetchJson.calls).toContain("/api/v1/monitoring/deployments/price-direction/series?window=7d"));
    expect(fetchJson.calls).toContain("/api/v1/monitoring/deployments/price-direction/summary?window=7d");
    expect(screen.getByRole("radio", { name: "7 days" })).toBeChecked();
  });

  it("reads RMSE for regression deployments", async () => {
    const regression = {
      versions: [{ model_version_id: 5, version: "returns v1", role: "champion", weight: 100, task: "regression", points: [point(0, { rmse: 0.042 })] }],
    };
    const windowed = { versions: [{ model_version_id: 5, requests: 100, server_errors: 0, rmse: 0.042, feedback_rows: 30, drift: {} }] };
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/returns/series?window=1h": regression,
      "/api/v1/monitoring/deployments/returns/summary?window=1h": windowed,
    });
    render(<ModelPerformanceWidget deployment="returns" fetchJson={fetchJson} />);
    expect(await screen.findByRole("img", { name: "RMSE over time (lower is better)" })).toBeInTheDocument();
    expect(screen.getByRole("rowheader", { name: "RMSE" }).closest("tr")).toHaveTextContent("0.042");
  });

  it("says when the window has no predictions", async () => {
    const empty = { versions: [{ model_version_id: 1, version: "m v1", role: "champion", weight: 100, task: "classification", points: [] }] };
    render(<ModelPerformanceWidget deployment="m" fetchJson={fakeFetch({ "/api/v1/monitoring/deployments/*": empty })} />);
    expect(await screen.findByText("No predictions in this window.")).toBeInTheDocument();
  });

  it("says when there is no deployment at all", () => {
    render(<ModelPerformanceWidget deployments={[]} fetchJson={fakeFetch({})} />);
    expect(screen.getByText("No active deployment to watch yet.")).toBeInTheDocument();
  });

  it("shows a server error and recovers on retry", async () => {
    const user = userEvent.setup();
    let down = true;
    const fetchJson = fakeFetch({ "/api/v1/monitoring/deployments/*": () => (down ? new Error("The server failed (HTTP 502).") : SERIES) });
    render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Could not load performance: The server failed (HTTP 502).");
    down = false;
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("table")).toBeInTheDocument();
  });

  it("reloads when the dashboard pushes a change for its deployment", async () => {
    const fetchJson = fakeFetch({ "/api/v1/monitoring/deployments/*": SERIES });
    const { rerender } = render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} refreshKeys={{}} />);
    await screen.findByRole("table");
    const before = fetchJson.calls.length;
    rerender(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} refreshKeys={{ other: 1 }} />);
    expect(fetchJson.calls.length).toBe(before);
    rerender(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} refreshKeys={{ "price-direction": 1 }} />);
    await waitFor(() => expect(fetchJson.calls.length).toBe(before + 2));
  });
});
