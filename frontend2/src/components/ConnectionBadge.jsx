const LABELS = {
  idle: ["Not connected", "idle"],
  connecting: ["Connecting…", "pending"],
  open: ["Live", "ok"],
  reconnecting: ["Connection lost, reconnecting…", "warn"],
  refused: ["Live updates refused (no permission)", "error"],
  closed: ["Disconnected", "idle"],
  finished: ["Finished", "idle"],
};

export function ConnectionBadge({ state, label }) {
  const [text, tone] = LABELS[state] || LABELS.idle;
  return (
    <span className={`mlops-badge mlops-badge--${tone}`} role="status" aria-live="polite">
      <span className="mlops-dot" aria-hidden="true" />
      {label ? `${label}: ` : ""}
      {text}
    </span>
  );
}
