"""Feature drift on fixed bins: what a version serves against the data it was trained on.

Each version's bins come from its training data's profile (apps.datasets.profiling: a 20-bin
histogram per numeric column), merged into DRIFT_BINS bins of about equal training mass. They are a
function of the profile alone, so they never change with traffic, and the log writer counts served
values into them per minute (RollupBin kind "f:<feature>"), which makes a drift window a sum of
rollup rows like any other.

Which values: a prediction-log line carries the numeric inputs of the request's last rows (at most
5, apps.deployments.serving.predict). For a version without history every input row is a served
row, so they all count; for a version with history (lags, windows: one served row per entity, the
others are its history) only the line's last row, the latest one, counts, so overlapping history
windows of one client are not counted over and over.

Two measures on the same bins: PSI (Σ (a − e) ln(a / e), half a count added per bin) and the
Jensen–Shannon divergence (base 2, 0–1, symmetric and finite even for empty bins). PSI below
MONITORING_DRIFT_WARN_PSI (0.1) is stable, up to MONITORING_DRIFT_ALERT_PSI (0.25) a warning, above
it an alert. With k bins and n served values PSI's noise is about (k − 1) / n, so a level is only
given from MIN_VALUES_FOR_LEVEL values on (0.05 of noise at 10 bins).
"""

from __future__ import annotations

import threading

import numpy as np
from django.conf import settings

DRIFT_BINS = 10
KIND_PREFIX = "f:"
MIN_VALUES_FOR_PSI = 30
MIN_VALUES_FOR_LEVEL = 200

_bins_cache: dict[int, tuple[dict, bool]] = {}
_bins_lock = threading.Lock()


def coarsen(edges, counts, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merges neighbouring histogram bins into about `bins` bins of equal training mass."""
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


def profile_bins(profile: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{feature: (edges, training counts)} for every numeric column of a training profile."""
    out = {}
    for name, column in (profile or {}).items():
        histogram = column.get("histogram") if isinstance(column, dict) else None
        if histogram and histogram.get("edges") and histogram.get("counts"):
            out[name] = coarsen(histogram["edges"], histogram["counts"], DRIFT_BINS)
    return out


def version_bins(version_id: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], bool]:
    """(profile bins, uses history) of a model version, cached: versions and their data never change."""
    cached = _bins_cache.get(version_id)
    if cached is not None:
        return cached
    from apps.registry.models import ModelVersion

    row = ModelVersion.objects.filter(pk=version_id).values("dataset_version__profile", "signature").first()
    if row is None:
        return {}, False
    signature = row["signature"] or {}
    history = int(signature.get("history_rows") or 1) > 1 or int(signature.get("window") or 1) > 1
    result = (profile_bins(row["dataset_version__profile"]), history)
    with _bins_lock:
        _bins_cache[version_id] = result
    return result


def bin_index(values, edges) -> np.ndarray:
    """Bin of each finite value; values outside the training range go to the end bins."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def served_values(features: dict, history: bool) -> dict[str, list]:
    """The values of a log line's `features` that count for drift (see the module docstring)."""
    out = {}
    for name, values in (features or {}).items():
        if isinstance(values, list) and values:
            out[name] = values[-1:] if history else values
    return out


def as_floats(values: list) -> np.ndarray:
    """Finite numbers only: a stray non-number must not fail the writer's batch (it would be retried forever)."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        array = np.asarray([v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)], dtype=float)
    return array[np.isfinite(array)] if array.ndim == 1 else np.empty(0)


def add_feature_bins(sums_by_minute: dict, rows) -> None:
    """Counts the drift values of `rows` ((deployment id, version id, minute, features), OK answers)
    into each minute's Sums (dict (deployment, version, minute) -> Sums)."""
    from .rollups import Sums

    gathered: dict[tuple, dict[str, list]] = {}
    for deployment_id, version_id, minute, features in rows:
        bins, history = version_bins(version_id)
        if not bins or not features:
            continue
        per_feature = gathered.setdefault((deployment_id, version_id, minute), {})
        for name, values in served_values(features, history).items():
            if name in bins:
                per_feature.setdefault(name, []).extend(values)
    for key, per_feature in gathered.items():
        bins, _ = version_bins(key[1])
        sums = sums_by_minute.get(key)
        if sums is None:
            sums = sums_by_minute[key] = Sums()
        for name, values in per_feature.items():
            counts = np.bincount(bin_index(as_floats(values), bins[name][0]), minlength=len(bins[name][1]))
            kind = (KIND_PREFIX + name)[:64]
            for k in np.flatnonzero(counts):
                sums.add_bin(kind, int(k), int(counts[k]))


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


def jensen_shannon(expected_counts, actual_counts) -> float:
    """Jensen–Shannon divergence (base 2: 0 identical, 1 disjoint) between two histograms."""
    p = np.asarray(expected_counts, dtype=float)
    q = np.asarray(actual_counts, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def drift_level(psi_value: float | None, served: int) -> str | None:
    """ "ok", "warn" or "alert" by the PSI thresholds; None while too few values were served."""
    if psi_value is None or served < MIN_VALUES_FOR_LEVEL:
        return None
    if psi_value >= settings.MONITORING_DRIFT_ALERT_PSI:
        return "alert"
    if psi_value >= settings.MONITORING_DRIFT_WARN_PSI:
        return "warn"
    return "ok"
