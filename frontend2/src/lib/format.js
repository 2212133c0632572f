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

export function formatWeight(w) {
  if (w == null || !Number.isFinite(Number(w))) return "—";
  const n = Number(w);
  // Weights may come as fractions (0.9) or percents (90).
  const pct = n <= 1 ? n * 100 : n;
  return `${Number(pct.toFixed(1))}%`;
}

export function weightFraction(w) {
  const n = Number(w);
  if (!Number.isFinite(n)) return 0;
  return n <= 1 ? n : n / 100;
}

export function humanize(text) {
  return String(text ?? "").replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}
