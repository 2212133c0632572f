export function Loading({ children = "Loading…" }) {
  return (
    <p className="mlops-loading" role="status" aria-live="polite">
      <span className="mlops-spinner" aria-hidden="true" />
      {children}
    </p>
  );
}

export function ErrorBox({ error, onRetry, title = "Could not load" }) {
  return (
    <div className="mlops-error" role="alert">
      <strong>{title}:</strong> {error?.message || String(error)}
      {onRetry && (
        <button type="button" className="mlops-btn" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ children }) {
  return <p className="mlops-empty">{children}</p>;
}
