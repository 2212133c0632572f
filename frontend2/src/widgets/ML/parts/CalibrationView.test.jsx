import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeFetch } from "../../../test/fakes";
import { normalizeCalibration } from "../../../lib/performance";
import { ModelPerformanceWidget } from "../ModelPerformanceWidget";
import { CalibrationView } from "./CalibrationView";

const CHAMPION_BINS = [
  { lower: 0.9, upper: 1.0, count: 46, mean_confidence: 0.9865, accuracy: 0.7609 },
  { lower: 0.6, upper: 0.7, count: 6, mean_confidence: 0.6632, accuracy: 1.0 },
];
const CHALLENGER_BINS = [{ lower: 0.8, upper: 0.9, count: 8, mean_confidence: 0.8658, accuracy: 0.625 }];

const point = { t: "2025-01-01T10:00:00Z", count: 10, errors: 0, error_rate: 0, p50_ms: 4, p95_ms: 9, p99_ms: 15, accuracy: 0.7 };
const SERIES = {
  versions: [
    { model_version_id: 1, version: "1", role: "champion", weight: 90, task: "classification", points: [point] },
    { model_version_id: 2, version: "2", role: "challenger", weight: 10, task: "classification", points: [point] },
  ],
};
const WINDOW = {
  versions: [
    { model_version_id: 1, requests: 52, server_errors: 0, feedback_rows: 52, accuracy: 0.79, log_loss: 0.48213, calibration: CHAMPION_BINS, drift: {} },
    { model_version_id: 2, requests: 8, server_errors: 0, feedback_rows: 8, accuracy: 0.625, log_loss: 0.7, calibration: CHALLENGER_BINS, drift: {} },
  ],
};

const cellsOf = (table) => within(table).getAllByRole("row").slice(1).map((row) => [...row.querySelectorAll("th, td")].map((c) => c.textContent));

describe("CalibrationView", () => {
  it("shows each version's bins with predicted confidence, observed accuracy and rows, and a reliability diagram", () => {
    const versions = [
      { key: "1", label: "v1", color: "#2563eb", bins: normalizeCalibration(CHAMPION_BINS) },
      { key: "2", label: "v2", color: "#ea580c", bins: normalizeCalibration(CHALLENGER_BINS) },
    ];
    render(<CalibrationView versions={versions} />);
    expect(cellsOf(screen.getByRole("table", { name: "Calibration of v1" }))).toEqual([
      ["60–70%", "66%", "100%", "6"],
      ["90–100%", "99%", "76%", "46"],
    ]);
    expect(cellsOf(screen.getByRole("table", { name: "Calibration of v2" }))).toEqual([["80–90%", "87%", "63%", "8"]]);
    const diagram = screen.getByRole("img", { name: /Reliability diagram/ });
    expect(diagram.querySelectorAll("circle")).toHaveLength(3);
    expect(within(diagram).getByTestId("perfect-calibration")).toBeInTheDocument();
  });

  it("says so when no labelled answer kept its probabilities", () => {
    render(<CalibrationView versions={[{ key: "1", label: "v1", color: "#000", bins: [] }]} />);
    expect(screen.getByText("No labelled answers with class probabilities in this window yet.")).toBeInTheDocument();
  });

  it("sits in the performance widget with log loss beside accuracy", async () => {
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/price-direction/series?window=1h": SERIES,
      "/api/v1/monitoring/deployments/price-direction/summary?window=1h": WINDOW,
    });
    render(<ModelPerformanceWidget deployment="price-direction" fetchJson={fetchJson} />);
    const table = await screen.findByRole("table", { name: /Champion vs challenger/ });
    const row = within(table).getByRole("rowheader", { name: "Log loss" }).closest("tr");
    expect(within(row).getAllByRole("cell").map((c) => c.textContent)).toEqual(["0.482", "0.700"]);
    expect(screen.getByRole("table", { name: "Calibration of v1" })).toBeInTheDocument();
    expect(screen.getByRole("img", { name: /Reliability diagram/ })).toBeInTheDocument();
  });

  it("is not shown for regression, which has no log loss either", async () => {
    const regression = { versions: [{ model_version_id: 5, version: "1", role: "champion", weight: 100, task: "regression", points: [{ ...point, rmse: 0.04 }] }] };
    const windowed = { versions: [{ model_version_id: 5, requests: 10, rmse: 0.04, log_loss: null, calibration: null, drift: {} }] };
    const fetchJson = fakeFetch({
      "/api/v1/monitoring/deployments/returns/series?window=1h": regression,
      "/api/v1/monitoring/deployments/returns/summary?window=1h": windowed,
    });
    render(<ModelPerformanceWidget deployment="returns" fetchJson={fetchJson} />);
    await screen.findByRole("table", { name: /Champion vs challenger/ });
    expect(screen.queryByRole("rowheader", { name: "Log loss" })).not.toBeInTheDocument();
    expect(screen.queryByText(/Calibration/)).not.toBeInTheDocument();
  });
});
