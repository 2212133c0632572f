import { describe, expect, it } from "vitest";
import { normalizeTimeseries, timeseriesPath } from "./performance";

describe("performance series", () => {
  it("puts the champion first and totals the window", () => {
    const data = normalizeTimeseries({
      versions: [
        { version: "m v2", role: "challenger", weight: 0.1, points: [{ t: "2025-01-01T00:05:00Z", count: 10, errors: 1, accuracy: 0.6, p50_ms: 3 }] },
        {
          version: "m v1",
          role: "champion",
          weight: 0.9,
          points: [
            { t: "2025-01-01T00:05:00Z", count: 90, errors: 0, accuracy: 0.55, p50_ms: 2 },
            { t: "2025-01-01T00:00:00Z", count: 10, errors: 10, accuracy: null, p50_ms: 4 },
          ],
        },
      ],
    });
    expect(data.versions.map((v) => v.role)).toEqual(["champion", "challenger"]);
    const champion = data.versions[0];
    expect(champion.points.map((p) => p.requests)).toEqual([10, 90]);
    expect(champion.totals).toMatchObject({ requests: 100, errors: 10, errorRate: 0.1, quality: 0.55, p50: 2 });
    expect(champion.points[0].errorRate).toBe(1);
    expect(data.metric).toBe("accuracy");
    expect(data.hasPoints).toBe(true);
  });

  it("takes the totals from the whole-window summary when there is one", () => {
    const series = { versions: [{ model_version_id: 7, version: "3", role: "champion", task: "regression", weight: 100, points: [{ t: "2025-01-01T00:00:00Z", count: 5, errors: 0, p50_ms: 9 }] }] };
    const summary = { versions: [{ model_version_id: 7, requests: 50, server_errors: 1, error_rate: 0.02, p50_ms: 3, p95_ms: 4, p99_ms: 5, feedback_rows: 10, rmse: 0.5, drift: { a: { psi: 0.2 }, b: { psi: null } } }] };
    const [v] = normalizeTimeseries(series, summary).versions;
    expect(v.label).toBe("v3");
    expect(v.totals).toEqual({ requests: 50, errors: 1, errorRate: 0.02, quality: 0.5, feedback: 10, p50: 3, p95: 4, p99: 5, drift: 0.2, logLoss: null, calibration: [] });
  });

  it("reads RMSE for regression and copes with no data", () => {
    const data = normalizeTimeseries({ versions: [{ version: "r", task: "regression", points: [{ t: "2025-01-01T00:00:00Z", count: 0, rmse: 1.5 }] }] });
    expect(data.metric).toBe("rmse");
    expect(data.versions[0].totals.quality).toBe(1.5);
    expect(normalizeTimeseries(null)).toMatchObject({ metric: "accuracy", versions: [], hasPoints: false });
  });

  it("escapes the deployment name in the URL", () => {
    expect(timeseriesPath("price direction", "24h")).toBe("/api/v1/monitoring/deployments/price%20direction/series?window=24h");
  });
});
