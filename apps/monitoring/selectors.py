"""Reads over prediction logs and feedback: sliding windows per version, time series, feature drift."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Extract, Floor, Least, Log
from django.utils import timezone

from apps.monitoring.arm_stats import ArmStats

from .calibration import reliability_table
from .choices import PredictionStatus
from .drift import KIND_PREFIX, MIN_VALUES_FOR_PSI, bin_index, drift_level, jensen_shannon, psi, version_bins
from .histogram import LOWEST_MS, OVERFLOW_BIN, PER_OCTAVE, percentile_ms
from .models import Feedback, PredictionLog, PredictionRollup, RollupBin
from .rollups import (
    ALL_TIME,
    CALIBRATION,
    FEEDBACK_SCALARS,
    LATENCY,
    MINUTE_SPAN,
    QUARTER_SPAN,
    REQUEST_SCALARS,
    SCALARS,
    STATUS_FIELD,
    Sums,
    minute_ceil,
    minute_of,
    quarter_ceil,
    quarter_of,
    span_ranges,
)

WINDOWS = {
    "15m": (timedelta(minutes=15), 60),
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


def _feedback_arm(task: str, n: int, n_correct, sq_sum, sq_sq_sum) -> tuple[ArmStats, float | None, float | None]:
    if task == "regression":
        arm = ArmStats.squared_errors(n=n, sq_error_sum=sq_sum or 0.0, sq_error_sq_sum=sq_sq_sum or 0.0)
        return arm, None, math.sqrt((sq_sum or 0.0) / n) if n else None
    arm = ArmStats.bernoulli(successes=n_correct or 0, n=n)
    return arm, (n_correct or 0) / n if n else None, None


def _latency_percentiles(sums: Sums) -> tuple[float | None, float | None, float | None]:
    bins = sums.latency_bins()
    return percentile_ms(bins, 0.5), percentile_ms(bins, 0.95), percentile_ms(bins, 0.99)


def _rollup_sums(*, deployment, start: datetime, end: datetime | None, scalars, kind: str) -> dict[int, Sums]:
    """Per version, the stored rollups of [start, end) (both minute-aligned; end None: open):
    quarter-hour rows for its whole quarters, minute rows for the rest."""
    covering = _covering(start, end)
    rows = PredictionRollup.objects.filter(covering, deployment=deployment)
    bins = RollupBin.objects.filter(covering, deployment=deployment, kind=kind)
    out: dict[int, Sums] = {}
    for row in rows.values("model_version_id").annotate(**{f"sum_{s}": Sum(s) for s in scalars}).order_by():
        sums = out.setdefault(row["model_version_id"], Sums())
        for s in scalars:
            sums.values[s] += row[f"sum_{s}"] or 0
    for version_id, k, count, correct, value in (
        bins.values("model_version_id", "bin")
        .annotate(c=Sum("count"), r=Sum("correct"), v=Sum("value_sum"))
        .order_by()
        .values_list("model_version_id", "bin", "c", "r", "v")
    ):
        out.setdefault(version_id, Sums()).add_bin(kind, k, count, correct, value)
    return out


def _covering(start: datetime, end: datetime | None) -> Q:
    """The rollup rows that cover [start, end) once (apps.monitoring.rollups.span_ranges)."""
    condition = Q(pk__in=[])
    for span, first, last in span_ranges(start, end):
        part = Q(span=span, minute__gte=first)
        if last is not None:
            part &= Q(minute__lt=last)
        condition |= part
    return condition


# Edge minutes already read from the raw rows: a gate asks for the same edge (its stage's first
# minute) every 15 s for the whole stage, and reading it costs as much as that minute's traffic.
_edge_cache: OrderedDict = OrderedDict()
_edge_cache_lock = threading.Lock()
EDGE_CACHE_SIZE = 512


def _edge_sums(*, deployment, start: datetime, end: datetime, part: str) -> dict[int, Sums]:
    """_raw_sums of [start, end) inside one minute, remembered with that minute's rollup sums: raw
    rows only arrive together with their rollup increment (one transaction: the log writer, feedback),
    so while the minute's sums are unchanged its raw rows are too, and the remembered answer is exactly
    what the raw rows would give. The sums are read before the raw rows: a row committed in between
    makes the next read see changed sums and read again, never keeps a stale answer."""
    scalars = REQUEST_SCALARS if part == "requests" else FEEDBACK_SCALARS
    fingerprint = tuple(
        PredictionRollup.objects.filter(deployment=deployment, span=MINUTE_SPAN, minute=minute_of(start))
        .order_by("model_version_id")
        .values_list("model_version_id", *scalars)
    )
    if not fingerprint:
        return {}  # no committed row in that minute
    key = (connection.settings_dict["NAME"], deployment.pk, start, end, part)
    with _edge_cache_lock:
        known = _edge_cache.get(key)
        if known is not None and known[0] == fingerprint:
            _edge_cache.move_to_end(key)
            return _copied(known[1])
    sums = _raw_sums(deployment=deployment, start=start, end=end, part=part)
    with _edge_cache_lock:
        _edge_cache[key] = (fingerprint, _copied(sums))
        _edge_cache.move_to_end(key)
        while len(_edge_cache) > EDGE_CACHE_SIZE:
            _edge_cache.popitem(last=False)
    return sums


def _copied(sums: dict[int, Sums]) -> dict[int, Sums]:
    out = {}
    for version_id, version_sums in sums.items():
        out[version_id] = Sums()
        out[version_id].merge(version_sums)
    return out


def _raw_sums(*, deployment, start: datetime, end: datetime, part: str) -> dict[int, Sums]:
    """Per version, the same sums from the raw rows served in [start, end): only for the part of a
    minute at a window's edge (at most a minute of one deployment's rows)."""
    from .services.rollups import rollup_sums_for_feedback, rollup_sums_for_logs

    if part == "requests":
        rows = PredictionLog.objects.filter(deployment=deployment, served_at__gte=start, served_at__lt=end)
        if connection.vendor == "postgresql":
            return _raw_request_sums_in_sql(rows)
        per_minute = rollup_sums_for_logs(
            rows.values_list("deployment_id", "model_version_id", "served_at", "status", "latency_ms")
        )
    else:
        rows = Feedback.objects.filter(deployment=deployment, served_at__gte=start, served_at__lt=end).only(
            "deployment_id",
            "model_version_id",
            "served_at",
            "n",
            "n_correct",
            "sq_error_sum",
            "sq_error_sq_sum",
            "log_loss_sum",
            "calibration",
        )
        per_minute = rollup_sums_for_feedback(rows)
    return {version_id: sums for (_, version_id, minute), sums in per_minute.items() if minute == ALL_TIME}


def _raw_request_sums_in_sql(rows) -> dict[int, Sums]:
    """The request sums of raw rows, added up by the database: a minute at 1,000 answers/s is 60,000
    rows, which should not travel. The latency bin is apps.monitoring.histogram's in SQL (a value
    exactly on a bound may land one bin off the writer's, which percentiles from bins allow for)."""
    out: dict[int, Sums] = {}
    for version_id, status, count, latency_sum in (
        rows.values("model_version_id", "status")
        .annotate(c=Count("id"), l=Sum("latency_ms"))
        .order_by()
        .values_list("model_version_id", "status", "c", "l")
    ):
        values = out.setdefault(version_id, Sums()).values
        values["requests"] += count
        values[STATUS_FIELD.get(status, "server_errors")] += count
        if status == PredictionStatus.OK:
            values["latency_ms_sum"] += latency_sum or 0.0
    latency_bin_sql = Case(
        When(latency_ms__lt=LOWEST_MS, then=Value(0)),
        default=Least(Value(OVERFLOW_BIN), Floor(Log(Value(2.0), F("latency_ms") / Value(LOWEST_MS)) * PER_OCTAVE) + 1),
        output_field=IntegerField(),
    )
    for version_id, k, count in (
        rows.filter(status=PredictionStatus.OK)
        .annotate(k=latency_bin_sql)
        .values("model_version_id", "k")
        .annotate(c=Count("id"))
        .order_by()
        .values_list("model_version_id", "k", "c")
    ):
        out.setdefault(version_id, Sums()).add_bin(LATENCY, int(k), count)
    return out


def window_sums(*, deployment, since: datetime, until: datetime | None, part: str) -> dict[int, Sums]:
    """Per version, the request ("requests") or feedback ("feedback") sums of [since, until): whole
    minutes from the rollups, the parts of a minute at the edges from the raw rows, so a window that
    starts mid-minute (a rollout stage) counts exactly what it did before rollups existed (an edge
    minute read once is remembered while its rollups stay the same: _edge_sums)."""
    scalars, kind = (REQUEST_SCALARS, LATENCY) if part == "requests" else (FEEDBACK_SCALARS, CALIBRATION)
    first, last = minute_ceil(since), minute_of(until) if until is not None else None
    if last is not None and last < first:
        return _edge_sums(deployment=deployment, start=since, end=until, part=part)
    out = _rollup_sums(deployment=deployment, start=first, end=last, scalars=scalars, kind=kind)
    edges = [(since, first)] + ([(last, until)] if until is not None else [])
    for start, end in edges:
        if start < end:
            for version_id, sums in _edge_sums(deployment=deployment, start=start, end=end, part=part).items():
                out.setdefault(version_id, Sums()).merge(sums)
    return out


def version_windows(
    *,
    deployment,
    since: datetime,
    until: datetime | None = None,
    feedback_since: datetime | None = None,
    requests: bool = True,
) -> dict[int, VersionWindow]:
    """Per model version: request counts, errors, latency percentiles of answered requests (from the
    rollups' latency bins: within one bin, 19%, of the exact ones), and accuracy (classification) or
    RMSE (regression) from the feedback on answers served in the window (from `feedback_since` when
    given: the sequential test looks at the whole rollout), and for classifiers log loss and
    calibration over the labelled answers that kept their probabilities. Reads rollups: the cost
    depends on the window's minutes and versions, not its requests. `requests=False` leaves the
    request figures out (zero) for a caller that only needs the feedback."""
    from apps.registry.models import ModelVersion

    served = window_sums(deployment=deployment, since=since, until=until, part="requests") if requests else {}
    feedback = window_sums(deployment=deployment, since=feedback_since or since, until=until, part="feedback")
    out: dict[int, VersionWindow] = {}
    for version_id, sums in served.items():
        v = sums.values
        if not v["requests"]:
            continue
        window = out[version_id] = VersionWindow(
            version_id=version_id,
            requests=int(v["requests"]),
            ok=int(v["ok"]),
            client_errors=int(v["client_errors"]),
            server_errors=int(v["server_errors"]),
        )
        window.p50_ms, window.p95_ms, window.p99_ms = _latency_percentiles(sums)
    labelled = {version_id: sums for version_id, sums in feedback.items() if sums.values["feedback_rows"]}
    tasks = dict(ModelVersion.objects.filter(pk__in=list(labelled)).values_list("pk", "task")) if labelled else {}
    for version_id, sums in labelled.items():
        v = sums.values
        window = out.setdefault(version_id, VersionWindow(version_id=version_id))
        window.feedback_rows = int(v["feedback_rows"])
        window.arm, window.accuracy, window.rmse = _feedback_arm(
            tasks.get(version_id), window.feedback_rows, v["feedback_correct"], v["sq_error_sum"], v["sq_error_sq_sum"]
        )
        if v["scored_rows"]:
            window.log_loss = v["log_loss_sum"] / v["scored_rows"]
            window.calibration = reliability_table(sums.calibration_sums())
    return out


def window_bounds(window: str, *, now: datetime | None = None) -> tuple[datetime, datetime, int]:
    """(start, end, bucket seconds) of a named window; ValueError for an unknown name."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")
    span, bucket = WINDOWS[window]
    end = now or timezone.now()
    # Buckets aligned to the clock so consecutive polls agree on their edges (and, being whole
    # minutes, on the rollups' edges).
    end_epoch = math.ceil(end.timestamp() / bucket) * bucket
    start_epoch = end_epoch - span.total_seconds()
    tz = timezone.get_current_timezone()
    return datetime.fromtimestamp(start_epoch, tz), datetime.fromtimestamp(end_epoch, tz), bucket


EMPTY_POINT = {
    "count": 0,
    "errors": 0,
    "client_errors": 0,
    "error_rate": None,
    "p50_ms": None,
    "p95_ms": None,
    "p99_ms": None,
}


def _bucketed_sums(*, deployment, start: datetime, end: datetime, bucket: int) -> dict[tuple[int, int], Sums]:
    """(version id, bucket index) -> Sums of the rollups in [start, end) (bucket a whole number of
    minutes). On PostgreSQL the database adds the minutes of each bucket up, so a 24-hour window moves
    a few hundred rows, not one per minute and bin."""
    start_epoch = start.timestamp()
    out: dict[tuple[int, int], Sums] = {}

    def slot(version_id, index) -> Sums:
        sums = out.get((version_id, index))
        if sums is None:
            sums = out[(version_id, index)] = Sums()
        return sums

    # Quarter-hour rows when the buckets are whole quarters (window_bounds aligns the start to them).
    span = QUARTER_SPAN if bucket % QUARTER_SPAN == 0 else MINUTE_SPAN
    rows = PredictionRollup.objects.filter(deployment=deployment, span=span, minute__gte=start, minute__lt=end)
    bins = RollupBin.objects.filter(deployment=deployment, span=span, minute__gte=start, minute__lt=end, kind=LATENCY)
    if connection.vendor == "postgresql":
        index = Floor((Extract("minute", "epoch") - Value(start_epoch)) / Value(float(bucket)))
        for row in (
            rows.annotate(b=index)
            .values("model_version_id", "b")
            .annotate(**{f"sum_{s}": Sum(s) for s in SCALARS})
            .order_by()
        ):
            values = slot(row["model_version_id"], int(row["b"])).values
            for s in SCALARS:
                values[s] += row[f"sum_{s}"]
        for version_id, b, k, count in (
            bins.annotate(b=index)
            .values("model_version_id", "b", "bin")
            .annotate(c=Sum("count"))
            .order_by()
            .values_list("model_version_id", "b", "bin", "c")
        ):
            slot(version_id, int(b)).add_bin(LATENCY, k, count)
        return out

    def index_of(minute) -> int:
        return int((minute.timestamp() - start_epoch) // bucket)

    for row in rows.values("model_version_id", "minute", *SCALARS).iterator(chunk_size=5000):
        values = slot(row["model_version_id"], index_of(row["minute"])).values
        for s in SCALARS:
            values[s] += row[s]
    for version_id, minute, k, count in bins.values_list("model_version_id", "minute", "bin", "count").iterator(
        chunk_size=5000
    ):
        slot(version_id, index_of(minute)).add_bin(LATENCY, k, count)
    return out


def deployment_series(*, deployment, labels: dict, window: str = DEFAULT_WINDOW, now: datetime | None = None) -> dict:
    """Time buckets per model version for the dashboard: count, error rate, p50/p95/p99 latency,
    and accuracy or RMSE from feedback on the answers served in each bucket (from the rollups).
    `labels` names the versions: {"versions", "roles", "weights", "shadows", "tasks"}, each keyed
    by model version id (apps.deployments.selectors.deployment_version_labels); a version missing
    there is shown as retired."""
    start, end, bucket = window_bounds(window, now=now)
    start_epoch = start.timestamp()
    n_buckets = int(round((end.timestamp() - start_epoch) / bucket))
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

    for (version_id, index), sums in sorted(
        _bucketed_sums(deployment=deployment, start=start, end=end, bucket=bucket).items()
    ):
        v = sums.values
        if not (v["requests"] or v["feedback_rows"]):
            continue
        entry = version_entry(int(version_id))
        point = dict(EMPTY_POINT)
        if v["requests"]:
            p50, p95, p99 = _latency_percentiles(sums)
            point.update(
                count=int(v["requests"]),
                errors=int(v["server_errors"]),
                client_errors=int(v["client_errors"]),
                error_rate=_round(v["server_errors"] / v["requests"]),
                p50_ms=_round(p50),
                p95_ms=_round(p95),
                p99_ms=_round(p99),
            )
        n = int(v["feedback_rows"])
        if n:
            point["feedback"] = n
            if entry["task"] == "regression":
                point["rmse"] = _round(math.sqrt(v["sq_error_sum"] / n))
            else:
                point["accuracy"] = _round(v["feedback_correct"] / n)
        entry["points"][int(index)] = point
    for version_id in labels["versions"]:
        if labels["weights"].get(version_id) or labels["shadows"].get(version_id):
            version_entry(version_id)
    versions = []
    for entry in sorted(
        series.values(), key=lambda e: (e["role"] != "champion", e["role"] != "challenger", e["model_version_id"])
    ):
        points = []
        for index in range(n_buckets):
            point = dict(entry["points"].get(index, EMPTY_POINT))
            point.setdefault("feedback", 0)
            point.setdefault("accuracy", None)
            point.setdefault("rmse", None)
            points.append(
                {"t": datetime.fromtimestamp(start_epoch + index * bucket, start.tzinfo).isoformat(), **point}
            )
        versions.append({**{k: v for k, v in entry.items() if k != "points"}, "points": points})
    return {
        "deployment": deployment.name,
        "window": window,
        "bucket_seconds": bucket,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "versions": versions,
    }


def binned_counts(values, edges) -> np.ndarray:
    """Counts of `values` in the histogram bins `edges`; values outside go to the end bins."""
    edges = np.asarray(edges, dtype=float)
    return np.bincount(bin_index(values, edges), minlength=len(edges) - 1)


def deployment_drift(*, deployment, versions, since: datetime, until: datetime | None = None) -> dict:
    """{version: {feature: {psi, js, served_values, level}}} for the served values of each version
    in `versions` since `since` (whole quarter hours: the one `since` falls in on), against its training
    profile on fixed bins (apps.monitoring.drift, which says how values are chosen and what the
    levels mean). psi and js are None below MIN_VALUES_FOR_PSI values, level below
    MIN_VALUES_FOR_LEVEL. Reads the rollups' feature bins only."""
    by_id = {version.pk: version for version in versions}
    if not by_id:
        return {}
    # Feature bins are kept per quarter hour: the quarters `since` and `until` fall in count whole.
    rows = RollupBin.objects.filter(
        deployment=deployment,
        model_version_id__in=list(by_id),
        kind__startswith=KIND_PREFIX,
        span=QUARTER_SPAN,
        minute__gte=quarter_of(since),
    )
    if until is not None:
        rows = rows.filter(minute__lt=quarter_ceil(until))
    served: dict[tuple[int, str], dict[int, int]] = {}
    for version_id, kind, k, count in (
        rows.values("model_version_id", "kind", "bin")
        .annotate(c=Sum("count"))
        .order_by()
        .values_list("model_version_id", "kind", "bin", "c")
    ):
        served.setdefault((version_id, kind[len(KIND_PREFIX) :]), {})[k] = count
    out = {version: {} for version in by_id.values()}
    for (version_id, feature), counts in sorted(served.items()):
        bins, _ = version_bins(version_id)
        if feature not in bins:
            continue
        expected = bins[feature][1]
        actual = np.zeros(len(expected))
        for k, count in counts.items():
            if 0 <= k < len(actual):
                actual[k] = count
        n = int(actual.sum())
        if n < MIN_VALUES_FOR_PSI:
            out[by_id[version_id]][feature] = {"psi": None, "js": None, "served_values": n, "level": None}
            continue
        value = _round(psi(expected, actual))
        out[by_id[version_id]][feature] = {
            "psi": value,
            "js": _round(jensen_shannon(expected, actual)),
            "served_values": n,
            "level": drift_level(value, n),
        }
    return out


def feature_drift(*, deployment, model_version, since: datetime, until: datetime | None = None) -> dict[str, dict]:
    """deployment_drift for one version: {feature: {psi, js, served_values, level}}."""
    return deployment_drift(deployment=deployment, versions=[model_version], since=since, until=until)[model_version]


def drift_warnings(drift: dict[str, dict]) -> list[dict]:
    """The features of a feature_drift result at "warn" or "alert", worst first."""
    flagged = [
        {"feature": name, **result} for name, result in drift.items() if result.get("level") in ("warn", "alert")
    ]
    return sorted(flagged, key=lambda item: -(item["psi"] or 0))


def served_drift_warnings(*, window: timedelta = timedelta(hours=1), now: datetime | None = None) -> list[dict]:
    """Drift warnings of every version that served requests in the last `window`:
    [{deployment, version, feature, psi, js, served_values, level}], alerts first. Which versions
    served comes from the rollups (a version that served nothing has no drift to show)."""
    from apps.registry.models import ModelVersion

    since = (now or timezone.now()) - window
    served: dict[tuple[int, str], list[int]] = {}
    rows = PredictionRollup.objects.filter(span=MINUTE_SPAN, minute__gte=minute_of(since), requests__gt=0)
    for deployment_id, name, version_id in (
        rows.values_list("deployment_id", "deployment__name", "model_version_id")
        .distinct()
        .order_by("deployment__name", "model_version_id")
    ):
        served.setdefault((deployment_id, name), []).append(version_id)
    versions = ModelVersion.objects.select_related("dataset_version").in_bulk(
        [version_id for ids in served.values() for version_id in ids]
    )
    out = []
    for (deployment_id, name), ids in served.items():
        drifts = deployment_drift(deployment=deployment_id, versions=[versions[i] for i in ids], since=since)
        for version, drift in drifts.items():
            for warning in drift_warnings(drift):
                out.append({"deployment": name, "version": str(version.version), **warning})
    return sorted(out, key=lambda w: (w["level"] != "alert", -(w["psi"] or 0)))
