"""Log loss and calibration of a classifier's probabilities against ground truth.

Feedback on a logged classification answer that kept its class probabilities stores two mergeable
things (apps.monitoring.services.feedback), so a window over any number of requests is a sum in
SQL and no probabilities are read again:

- `log_loss_sum`: Σ −ln p(true class) over the request's rows, p clipped to [EPS, 1] so a class the
  model ruled out (or a label it never saw) costs −ln EPS ≈ 34.5 instead of infinity;
- `calibration`: for the confidence of the predicted class (the row's largest probability), per
  fixed bin [k/10, (k+1)/10) (1.0 falls in the last one): {"count": [...], "correct": [...],
  "confidence": [sums]}.

A window's reliability table is then, per non-empty bin: mean predicted confidence, observed
accuracy and count; a calibrated model has the first two close in every bin.
"""

from __future__ import annotations

import math

BINS = 10
EPS = 1e-15
CALIBRATION_KEYS = ("count", "correct", "confidence")


def confidence_bin(confidence: float) -> int:
    return min(max(int(math.floor(confidence * BINS)), 0), BINS - 1)


def empty_calibration() -> dict:
    return {"count": [0] * BINS, "correct": [0] * BINS, "confidence": [0.0] * BINS}


def row_log_loss(p_true: float) -> float:
    return -math.log(min(max(float(p_true), EPS), 1.0))


def reliability_table(sums: dict) -> list[dict]:
    """The non-empty bins of summed calibration counts ({key: one value per bin, None for none}) as
    [{lower, upper, count, mean_confidence, accuracy}]."""
    table = []
    for k in range(BINS):
        count = int(sums["count"][k] or 0)
        if not count:
            continue
        table.append(
            {
                "lower": round(k / BINS, 2),
                "upper": round((k + 1) / BINS, 2),
                "count": count,
                "mean_confidence": round(float(sums["confidence"][k] or 0.0) / count, 4),
                "accuracy": round(int(sums["correct"][k] or 0) / count, 4),
            }
        )
    return table
