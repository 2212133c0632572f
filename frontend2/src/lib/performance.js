/**
 * Model performance time series, normalised from the monitoring API into what the widget draws.
 *
 * From apps.monitoring.selectors.deployment_series (window 15m | 1h | 6h | 24h | 7d):
 *   {deployment, window, bucket_seconds, start, end,
 *    versions: [{model_version_id, version, role, weight (percent), shadow, task,
 *                points: [{t, count, errors, client_errors, error_rate, p50_ms, p95_ms, p99_ms,
 *                          feedback, accuracy, rmse}]}]}
 * Empty buckets carry count 0 and null latencies; they are kept so gaps show as gaps.
 * The side-by-side totals come from .../summary?window= ({versions: [{model_version_id, requests,
 * server_errors, error_rate, p50_ms, p95_ms, p99_ms, feedback_rows, accuracy, rmse, log_loss,
 * calibration: [{lower, upper, count, mean_confidence, accuracy}] | null, drift}]}) when given, else
 * from the buckets (then latency is the last bucket's, and there is no log loss or calibration).
 */
export const WINDOWS = [
  { value: "15m", label: "15 min" },
  { value: "1h", label: "1 hour" },
  { value: "6h", label: "6 hours" },
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
];

export function timeseriesPath(name, window) {
  return `/api/v1/monitoring/deployments/${encodeURIComponent(name)}/series?window=${encodeURIComponent(window)}`;
}

/** Whole-window figures per version (true percentiles over the window, accuracy over all feedback). */
export function windowSummaryPath(name, window) {
  return `/api/v1/monitoring/deployments/${encodeURIComponent(name)}/summary?window=${encodeURIComponent(window)}`;
}

const num = (v) => (v == null || v === "" ? null : Number.isFinite(Number(v)) ? Number(v) : null);

function normalizePoint(p, metric) {
  const requests = num(p.count) ?? 0;
  const errors = num(p.errors) ?? 0;
  return {
    t: new Date(p.t).getTime(),
    requests,
    errors,
    errorRate: num(p.error_rate) ?? (requests ? errors / requests : null),
    p50: num(p.p50_ms),
    p95: num(p.p95_ms),
    p99: num(p.p99_ms),
    quality: num(p[metric]),
  };
}

function lastDefined(points, key) {
  for (let i = points.length - 1; i >= 0; i -= 1) if (points[i][key] != null) return points[i][key];
  return null;
}

/** The reliability table's non-empty bins, lowest confidence first. */
export function normalizeCalibration(bins) {
  return (Array.isArray(bins) ? bins : [])
    .map((b) => ({
      lower: num(b?.lower),
      upper: num(b?.upper),
      count: num(b?.count) ?? 0,
      confidence: num(b?.mean_confidence),
      accuracy: num(b?.accuracy),
    }))
    .filter((b) => b.lower != null && b.upper != null && b.count > 0 && b.confidence != null && b.accuracy != null)
    .sort((a, b) => a.lower - b.lower);
}

function maxPsi(drift) {
  const values = Object.values(drift || {}).map((d) => d?.psi).filter((v) => Number.isFinite(v));
  return values.length ? Math.max(...values) : null;
}

export function normalizeTimeseries(raw, summary = null) {
  const windowed = new Map((summary?.versions || []).map((v) => [String(v.model_version_id), v]));
  const regression = raw?.metric === "rmse" || (!raw?.metric && (raw?.versions || []).some((v) => v.task === "regression"));
  const metric = regression ? "rmse" : "accuracy";
  const versions = (raw?.versions || []).map((v) => {
    const points = (v.points || [])
      .map((p) => normalizePoint(p, metric))
      .filter((p) => Number.isFinite(p.t))
      .sort((a, b) => a.t - b.t);
    const requests = points.reduce((sum, p) => sum + p.requests, 0);
    const errors = points.reduce((sum, p) => sum + p.errors, 0);
    const w = windowed.get(String(v.model_version_id));
    const totals = w
      ? {
          requests: num(w.requests) ?? 0,
          errors: num(w.server_errors) ?? 0,
          errorRate: num(w.error_rate),
          quality: num(w[metric]),
          feedback: num(w.feedback_rows),
          p50: num(w.p50_ms),
          p95: num(w.p95_ms),
          p99: num(w.p99_ms),
          drift: maxPsi(w.drift),
          logLoss: num(w.log_loss),
          calibration: normalizeCalibration(w.calibration),
        }
      : {
          requests,
          errors,
          errorRate: requests ? errors / requests : null,
          quality: lastDefined(points, "quality"),
          feedback: null,
          p50: lastDefined(points, "p50"),
          p95: lastDefined(points, "p95"),
          p99: lastDefined(points, "p99"),
          drift: null,
          logLoss: null,
          calibration: [],
        };
    return {
      key: String(v.model_version_id ?? v.version),
      // The series names versions by number; "v3" reads better in legends and table headers.
      label: `${/^\d+$/.test(String(v.version)) ? `v${v.version}` : v.version}${v.shadow ? " (shadow)" : ""}`,
      role: v.role ?? null,
      shadow: !!v.shadow,
      weight: num(v.weight),
      points,
      totals,
    };
  });
  // Champion first, then challengers: the side-by-side columns read left to right.
  const rank = (r) => (r === "champion" ? 0 : r === "challenger" ? 1 : 2);
  versions.sort((a, b) => rank(a.role) - rank(b.role));
  return { metric, window: raw?.window ?? null, versions, hasPoints: versions.some((v) => v.points.length > 0) };
}
