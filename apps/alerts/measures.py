"""What each alert kind measures over a window, read through the monitoring selectors only, which
read the per-minute rollups: a check costs the same at 10 or 10,000 requests a minute.

Each measure returns a number, or None when the window holds nothing to judge (no requests, no
feedback, too few served values for drift): None never breaches, so a rule whose data went away
resolves the way a Prometheus alert does when its series disappears. no_traffic is the exception:
its value is the request count, 0 for an empty window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apps.monitoring.selectors import deployment_drift, version_windows

from .choices import AlertKind

# The live metric each task's accuracy_drop compares with the version's validation score, and
# whether a larger value is better (a drop is then validation minus live).
LIVE_METRIC = {"classification": ("accuracy", True), "regression": ("rmse", False)}


def _serving_versions(deployment):
    from apps.deployments.selectors import deployment_serving_versions

    return [row.model_version for row in deployment_serving_versions(deployment=deployment)]


def _accuracy_drop(deployment, windows) -> float | None:
    drops = []
    for version in _serving_versions(deployment):
        window = windows.get(version.pk)
        metric, higher_is_better = LIVE_METRIC.get(version.task, (None, True))
        if window is None or metric is None:
            continue
        live = getattr(window, metric)
        validation = (version.metrics or {}).get("val", {}).get(metric)
        if live is None or validation is None:
            continue
        drops.append(validation - live if higher_is_better else live - validation)
    return max(drops) if drops else None


def _highest_psi(deployment, since: datetime, until: datetime) -> float | None:
    drift = deployment_drift(deployment=deployment, versions=_serving_versions(deployment), since=since, until=until)
    values = [result["psi"] for features in drift.values() for result in features.values() if result["psi"] is not None]
    return max(values) if values else None


def measure(*, kind: str, deployment, window_minutes: int, now: datetime) -> float | None:
    """The value of `kind` for `deployment` over the `window_minutes` before `now`."""
    since = now - timedelta(minutes=window_minutes)
    if kind == AlertKind.DRIFT:
        return _highest_psi(deployment, since, now)
    needs_requests = kind != AlertKind.ACCURACY_DROP
    windows = version_windows(deployment=deployment, since=since, until=now, requests=needs_requests)
    if kind == AlertKind.ACCURACY_DROP:
        return _accuracy_drop(deployment, windows)
    requests = sum(w.requests for w in windows.values())
    if kind == AlertKind.NO_TRAFFIC:
        return float(requests)
    if not requests:
        return None
    if kind == AlertKind.ERROR_RATE:
        return sum(w.server_errors for w in windows.values()) / requests
    if kind == AlertKind.P99_LATENCY:
        p99s = [w.p99_ms for w in windows.values() if w.p99_ms is not None]
        return max(p99s) / 1000.0 if p99s else None
    raise ValueError(f"unknown alert kind {kind!r}")


def breaches(*, kind: str, value: float | None, threshold: float) -> bool:
    if value is None:
        return False
    return value <= threshold if kind == AlertKind.NO_TRAFFIC else value > threshold


UNITS = {
    AlertKind.ERROR_RATE: "",
    AlertKind.P99_LATENCY: " s",
    AlertKind.ACCURACY_DROP: "",
    AlertKind.DRIFT: " PSI",
    AlertKind.NO_TRAFFIC: " requests",
}
