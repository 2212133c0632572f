import { useEffect, useId, useRef, useState } from "react";

/**
 * A modal confirmation with an optional reason. Escape or Cancel closes it; focus starts on Cancel so
 * a stray Enter never confirms a rollback, and Tab stays inside the dialog.
 */
export function ConfirmDialog({ title, message, confirmLabel, danger = false, busy = false, error = null, onConfirm, onCancel }) {
  const ids = useId();
  const cancelRef = useRef(null);
  const dialogRef = useRef(null);
  const [reason, setReason] = useState("");

  useEffect(() => {
    const previous = document.activeElement;
    cancelRef.current?.focus();
    return () => previous?.focus?.();
  }, []);

  const onKeyDown = (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      onCancel();
      return;
    }
    if (e.key !== "Tab") return;
    const focusable = dialogRef.current.querySelectorAll("button:not([disabled]), input, textarea");
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div className="mlops-modal" onKeyDown={onKeyDown}>
      <div className="mlops-modal__backdrop" onClick={busy ? undefined : onCancel} />
      <div
        ref={dialogRef}
        className="mlops-modal__dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={`${ids}-title`}
        aria-describedby={`${ids}-msg`}
      >
        <h2 id={`${ids}-title`}>{title}</h2>
        <p id={`${ids}-msg`}>{message}</p>
        <label className="mlops-field">
          <span>Reason (recorded in the deployment's events)</span>
          <input type="text" value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
        </label>
        {error && (
          <p className="mlops-error" role="alert">
            {error.message || String(error)}
          </p>
        )}
        <div className="mlops-modal__actions">
          <button type="button" className="mlops-btn" ref={cancelRef} onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button
            type="button"
            className={`mlops-btn ${danger ? "mlops-btn--danger" : "mlops-btn--primary"}`}
            onClick={() => onConfirm(reason.trim())}
            disabled={busy}
          >
            {busy ? "Working…" : confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}
