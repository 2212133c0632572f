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
    { model_version_id: 2, version: "price-direction v2", role: "challenger", weight: 10, task: "classification", points: [point(0, { accuracy: 0.61 }), point(5, { accuracy: 0.63, count: 12, errors: 0, error_rate: 0 })] },
    { model_version_id: 1, version: "price-direction v1", role: "champion", weight: 90, task: "classification", points: [point(0, { accuracy: 0.58 }), point(5, { accuracy: 0.57 })] },
  ],
};

describe("ModelPerformanceWidget", () => {
  it("shows champion and challenger side by side with accuracy, latency, volume and error rate", async () => {
    const fetchJson = fakeFetch({ "/api/v1/monitoring/deployments/price-direction/timeseries?window=24h": SERIES });
    render(<ModelPerformanceWidget deployments={[{ name: "price-direction" }]} fetchJson={fetchJson} />);
    const table = await screen.findByRole("table", { name: /Champion vs challenger/ });
    const headers = within(table).getAllByRole("columnheader").map((th) => th.textContent);
    expect(headers).toEqual(["Measure", "price-direction v1", "price-direction v2"]);
    const row = (name) => within(table).getByRole("rowheader", { name }).closest("tr");
    expect(within(row("Traffic weight")).getAllByRole("cell").map((c) => c.textContent)).toEqual(["90%", "10%"]);
    expect(within(row("Requests")).getAllByRole("cell").map((c) => c.textContent)).toEqual(["200", "112"]);
    expect(within(row("Accuracy (latest)")).getAllByRole("cell").map((c) => c.textContent)).toEqual(["57%", "63%"]);
    expect(within(row("Latency p99")).getAllByRole("cell").map((c) => c.textContent)).toEqual(["15 ms", "15 ms"]);
    for (const title of ["Accuracy over time", "Requests per bucket", "Error rate", "Latency of price-direction v1 (ms)", "Latency of price-direction v2 (ms)"]) {
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
    await waitFor(() => expect(fetchJson.calls.at(-1)).toBe("/api/v1/monitoring/deployments/price-direction/timeseries?window=7d"));
    expect(screen.getByRole("radio", { name: "7 days" })).toBeChecked();
  });

  it("reads RMSE for regression deployments", async () => {
    const regression = {
      versions: [{ model_version_id: 5, version: "returns v1", role: "champion", weight: 100, task: "regression", points: [point(0, { rmse: 0.042 })] }],
    };
    render(<ModelPerformanceWidget deployment="returns" fetchJson={fakeFetch({ "/api/v1/monitoring/deployments/*": regression })} />);
    expect(await screen.findByRole("img", { name: "RMSE over time (lower is better)" })).toBeInTheDocument();
    expect(screen.getByRole("rowheader", { name: "RMSE (latest)" }).closest("tr")).toHaveTextContent("0.042");
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
    await waitFor(() => expect(fetchJson.calls.length).toBe(before + 1));
  });
});
