export function formatClock(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export function formatDateTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

/** Traffic weights are percents (0-100), as the deployments app stores them. */
export function formatWeight(percent) {
  if (percent == null || !Number.isFinite(Number(percent))) return "—";
  return `${Number(Number(percent).toFixed(1))}%`;
}

export function humanize(text) {
  return String(text ?? "").replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}
