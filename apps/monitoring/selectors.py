"""Reads over prediction logs and feedback: sliding windows per version, time series, feature drift."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db.models import Count, FloatField, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from apps.deployments.sequential import ArmStats

from .calibration import BINS, CALIBRATION_KEYS, reliability_table
from .choices import PredictionStatus
from .models import Feedback, PredictionLog

WINDOWS = {
    "15m": (timedelta(minutes=15), 30),
    "1h": (timedelta(hours=1), 60),
    "6h": (timedelta(hours=6), 300),
    "24h": (timedelta(hours=24), 900),
    "7d": (timedelta(days=7), 3 * 3600),
}
DEFAULT_WINDOW = "1h"


@dataclass
class VersionWindow:
    """What one model version did over a window."""

    version_id: int
    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    feedback_rows: int = 0
    accuracy: float | None = None
    rmse: float | None = None
    # Classifiers whose logged answers kept their probabilities: mean log loss per labelled row, and
    # the reliability table (apps.monitoring.calibration.reliability_table).
    log_loss: float | None = None
    calibration: list | None = None
    arm: ArmStats | None = field(default=None, repr=False)

    @property
    def error_rate(self) -> float | None:
        return self.server_errors / self.requests if self.requests else None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("arm")
        data["error_rate"] = _round(self.error_rate)
        for key in ("p50_ms", "p95_ms", "p99_ms", "accuracy", "rmse", "log_loss"):
            data[key] = _round(data[key])
        return data


def _round(value, digits: int = 4):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    if values.size == 0:
        return None, None, None
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def _feedback_arm(task: str, n: int, n_correct, sq_sum, sq_sq_sum) -> tuple[ArmStats, float | None, float | None]:
    if task == "regression":
        arm = ArmStats.squared_errors(n=n, sq_error_sum=sq_sum or 0.0, sq_error_sq_sum=sq_sq_sum or 0.0)
        return arm, None, math.sqrt((sq_sum or 0.0) / n) if n else None
    arm = ArmStats.bernoulli(successes=n_correct or 0, n=n)
    return arm, (n_correct or 0) / n if n else None, None


# One SQL sum per calibration bin and key ("cal_count_3" ...): windows add up stored counts only.
CALIBRATION_SUMS = {
    f"cal_{key}_{k}": Sum(Cast(KT(f"calibration__{key}__{k}"), FloatField()))
    for key in CALIBRATION_KEYS for k in range(BINS)
}


def _probability_quality(row: dict) -> tuple[float | None, list | None]:
    n = int(row["n_scored"] or 0)
    if not n or row["log_loss"] is None:
        return None, None
    sums = {key: [row[f"cal_{key}_{k}"] for k in range(BINS)] for key in CALIBRATION_KEYS}
    return row["log_loss"] / n, reliability_table(sums)


def version_windows(*, deployment, since: datetime, until: datetime | None = None,
                    feedback_since: datetime | None = None) -> dict[int, VersionWindow]:
    """Per model version: request counts, errors, latency percentiles of answered requests, and
    accuracy (classification) or RMSE (regression) from the feedback on answers served in the window
    (from `feedback_since` when given: the sequential test looks at the whole rollout), and for
    classifiers log loss and calibration over the labelled answers that kept their probabilities."""
    logs = PredictionLog.objects.filter(deployment=deployment, served_at__gte=since)
    if until is not None:
        logs = logs.filter(served_at__lt=until)
    rows = list(logs.values_list("model_version_id", "status", "latency_ms"))
    out: dict[int, VersionWindow] = {}
    if rows:
        frame = pd.DataFrame(rows, columns=["version", "status", "latency"])
        for version_id, group in frame.groupby("version", sort=False):
            window = out.setdefault(int(version_id), VersionWindow(version_id=int(version_id)))
            statuses = group["status"].to_numpy()
            window.requests = len(group)
            window.ok = int((statuses == PredictionStatus.OK).sum())
            window.client_errors = int((statuses == PredictionStatus.CLIENT_ERROR).sum())
            window.server_errors = int((statuses == PredictionStatus.SERVER_ERROR).sum())
            window.p50_ms, window.p95_ms, window.p99_ms = _percentiles(
                group["latency"].to_numpy()[statuses == PredictionStatus.OK]
            )
    feedback = Feedback.objects.filter(deployment=deployment, served_at__gte=feedback_since or since)
    if until is not None:
        feedback = feedback.filter(served_at__lt=until)
    for row in feedback.values("model_version_id", "model_version__task").annotate(
        n_rows=Sum("n"), n_scored=Sum("n", filter=Q(log_loss_sum__isnull=False)), log_loss=Sum("log_loss_sum"),
        **CALIBRATION_SUMS, n_correct=Sum("n_correct"), sq=Sum("sq_error_sum"), sq2=Sum("sq_error_sq_sum"),
    ):
        window = out.setdefault(row["model_version_id"], VersionWindow(version_id=row["model_version_id"]))
        window.feedback_rows = int(row["n_rows"] or 0)
        window.arm, window.accuracy, window.rmse = _feedback_arm(
            row["model_version__task"], window.feedback_rows, row["n_correct"], row["sq"], row["sq2"]
        )
        window.log_loss, window.calibration = _probability_quality(row)
    return out


def window_bounds(window: str, *, now: datetime | None = None) -> tuple[datetime, datetime, int]:
    """(start, end, bucket seconds) of a named window; ValueError for an unknown name."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")
    span, bucket = WINDOWS[window]
    end = now or timezone.now()
    # Buckets aligned to the clock so consecutive polls agree on their edges.
    end_epoch = math.ceil(end.timestamp() / bucket) * bucket
    start_epoch = end_epoch - span.total_seconds()
    tz = timezone.get_current_timezone()
    return datetime.fromtimestamp(start_epoch, tz), datetime.fromtimestamp(end_epoch, tz), bucket


def _bucket_index(times: pd.Series, start_epoch: float, bucket: int) -> pd.Series:
    # Seconds since the epoch whatever unit pandas picked for the column (ns, us...).
    seconds = (pd.to_datetime(times, utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return ((seconds - start_epoch) // bucket).astype(int)


def deployment_series(*, deployment, window: str = DEFAULT_WINDOW, now: datetime | None = None) -> dict:
    """Time buckets per model version for the dashboard: count, error rate, p50/p95/p99 latency,
    and accuracy or RMSE from feedback on the answers served in each bucket."""
    start, end, bucket = window_bounds(window, now=now)
    start_epoch = start.timestamp()
    n_buckets = int(round((end.timestamp() - start_epoch) / bucket))
    logs = list(
        PredictionLog.objects.filter(deployment=deployment, served_at__gte=start, served_at__lt=end)
        .values_list("model_version_id", "served_at", "status", "latency_ms", "shadow")
    )
    feedback = list(
        Feedback.objects.filter(deployment=deployment, served_at__gte=start, served_at__lt=end)
        .values_list("model_version_id", "served_at", "n", "n_correct", "sq_error_sum")
    )
    from apps.deployments.selectors import deployment_version_labels

    labels = deployment_version_labels(deployment=deployment)
    tasks = dict(labels["tasks"])
    series: dict[int, dict] = {}

    def version_entry(version_id: int) -> dict:
        if version_id not in series:
            series[version_id] = {
                "model_version_id": version_id,
                "version": labels["versions"].get(version_id, str(version_id)),
                "role": labels["roles"].get(version_id, "retired"),
                "weight": labels["weights"].get(version_id, 0.0),
                "shadow": labels["shadows"].get(version_id, False),
                "task": tasks.get(version_id),
                "points": {},
            }
        return series[version_id]

    if logs:
        frame = pd.DataFrame(logs, columns=["version", "served_at", "status", "latency", "shadow"])
        frame["bucket"] = _bucket_index(frame["served_at"], start_epoch, bucket)
        frame["ok"] = frame["status"] == PredictionStatus.OK
        frame["server_error"] = frame["status"] == PredictionStatus.SERVER_ERROR
        frame["client_error"] = frame["status"] == PredictionStatus.CLIENT_ERROR
        for (version_id, index), group in frame.groupby(["version", "bucket"], sort=True):
            latencies = group["latency"].to_numpy()[group["ok"].to_numpy()]
            p50, p95, p99 = _percentiles(latencies)
            count = len(group)
            version_entry(int(version_id))["points"][int(index)] = {
                "count": count,
                "errors": int(group["server_error"].sum()),
                "client_errors": int(group["client_error"].sum()),
                "error_rate": _round(group["server_error"].sum() / count),
                "p50_ms": _round(p50), "p95_ms": _round(p95), "p99_ms": _round(p99),
            }
    if feedback:
        frame = pd.DataFrame(feedback, columns=["version", "served_at", "n", "n_correct", "sq"])
        frame["bucket"] = _bucket_index(frame["served_at"], start_epoch, bucket)
        sums = frame.groupby(["version", "bucket"], sort=True)[["n", "n_correct", "sq"]].sum(min_count=1)
        for (version_id, index), row in sums.iterrows():
            entry = version_entry(int(version_id))
            point = entry["points"].setdefault(int(index), {
                "count": 0, "errors": 0, "client_errors": 0, "error_rate": None, "p50_ms": None, "p95_ms": None, "p99_ms": None,
            })
            n = int(row["n"])
            point["feedback"] = n
            if entry["task"] == "regression":
                point["rmse"] = _round(math.sqrt(row["sq"] / n)) if n and pd.notna(row["sq"]) else None
            else:
                point["accuracy"] = _round(row["n_correct"] / n) if n and pd.notna(row["n_correct"]) else None
    for version_id in labels["versions"]:
        if labels["weights"].get(version_id) or labels["shadows"].get(version_id):
            version_entry(version_id)
    versions = []
    for entry in sorted(series.values(), key=lambda e: (e["role"] != "champion", e["role"] != "challenger", e["model_version_id"])):
        points = []
        for index in range(n_buckets):
            point = entry["points"].get(index, {
                "count": 0, "errors": 0, "client_errors": 0, "error_rate": None, "p50_ms": None, "p95_ms": None, "p99_ms": None,
            })
            point.setdefault("feedback", 0)
            point.setdefault("accuracy", None)
            point.setdefault("rmse", None)
            points.append({"t": datetime.fromtimestamp(start_epoch + index * bucket, start.tzinfo).isoformat(), **point})
        versions.append({**{k: v for k, v in entry.items() if k != "points"}, "points": points})
    return {
        "deployment": deployment.name,
        "window": window,
        "bucket_seconds": bucket,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "versions": versions,
    }


def psi(expected_counts, actual_counts) -> float:
    """Population stability index between two histograms over the same bins (half a count added
    to every bin so an empty bin does not dominate)."""
    expected = np.asarray(expected_counts, dtype=float) + 0.5
    actual = np.asarray(actual_counts, dtype=float) + 0.5
    if expected.sum() <= 0.5 * len(expected) or actual.sum() <= 0.5 * len(actual):
        return float("nan")
    e = expected / expected.sum()
    a = actual / actual.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def coarsen(edges, counts, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merges neighbouring histogram bins into about `bins` bins of equal training mass, so a small
    served sample still has several values per bin (PSI over sparse bins is biased upwards)."""
    edges = np.asarray(edges, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if bins >= len(counts) or counts.sum() <= 0:
        return edges, counts
    share = np.cumsum(counts) / counts.sum()
    cuts = sorted({int(np.searchsorted(share, q)) for q in np.linspace(0, 1, bins + 1)[1:-1]})
    groups = np.split(np.arange(len(counts)), [c + 1 for c in cuts if c + 1 < len(counts)])
    groups = [g for g in groups if len(g)]
    merged_edges = np.array([edges[g[0]] for g in groups] + [edges[-1]])
    merged_counts = np.array([counts[g].sum() for g in groups])
    return merged_edges, merged_counts


def binned_counts(values, edges) -> np.ndarray:
    """Counts of `values` in the histogram bins `edges`; values outside go to the end bins."""
    edges = np.asarray(edges, dtype=float)
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(index, minlength=len(edges) - 1)


VALUES_PER_BIN = 10


def feature_drift(*, deployment, model_version, since: datetime, until: datetime | None = None,
                  min_values: int = 30) -> dict[str, dict]:
    """PSI per raw numeric feature: the inputs the version served since `since` against the training
    data's histogram (the dataset version's profile). {feature: {psi, served_values}}; a feature with
    fewer than `min_values` served values gets psi None."""
    profile = getattr(model_version.dataset_version, "profile", None) or {}
    logs = PredictionLog.objects.filter(
        deployment=deployment, model_version=model_version, served_at__gte=since, status=PredictionStatus.OK
    ).exclude(features={})
    if until is not None:
        logs = logs.filter(served_at__lt=until)
    served: dict[str, list] = {}
    for features in logs.values_list("features", flat=True).iterator(chunk_size=2000):
        for name, values in (features or {}).items():
            served.setdefault(name, []).extend(values)
    out = {}
    for name, column in profile.items():
        histogram = (column or {}).get("histogram") if isinstance(column, dict) else None
        if not histogram or name not in served:
            continue
        values = served[name]
        if len(values) < min_values:
            out[name] = {"psi": None, "served_values": len(values)}
            continue
        edges, expected = coarsen(histogram["edges"], histogram["counts"], max(3, len(values) // VALUES_PER_BIN))
        out[name] = {"psi": _round(psi(expected, binned_counts(values, edges))), "served_values": len(values)}
    return out


def deployment_request_counts(*, deployment, since: datetime) -> dict:
    return PredictionLog.objects.filter(deployment=deployment, served_at__gte=since).aggregate(
        total=Count("id"), errors=Count("id", filter=Q(status=PredictionStatus.SERVER_ERROR))
    )
