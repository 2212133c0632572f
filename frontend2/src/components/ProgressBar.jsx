export function ProgressBar({ percent, label, detail }) {
  const value = Number.isFinite(percent) ? Math.max(0, Math.min(100, percent)) : null;
  return (
    <div className="mlops-progress">
      <div
        className="mlops-progress__track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={value ?? undefined}
        aria-valuetext={value == null ? "not started" : `${Math.round(value)}%${detail ? `, ${detail}` : ""}`}
      >
        {/* Remounted when the value becomes known, so it does not slide down from the full "unknown" stripe. */}
        <div key={value == null ? "unknown" : "known"} className={`mlops-progress__bar${value == null ? " mlops-progress__bar--unknown" : ""}`} style={{ width: `${value ?? 100}%` }} />
      </div>
      {detail && <div className="mlops-progress__detail">{detail}</div>}
    </div>
  );
}
