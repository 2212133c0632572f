"""Writes the per-minute rollups: increments from the log writer and from feedback, and the rebuild
from raw rows (backfills, repairs).

Each write is one INSERT … ON CONFLICT DO UPDATE per table that adds to the stored sums, in the
caller's transaction, with its keys in one fixed order (deployment, version, minute, kind, bin):
several web processes writing the same minute queue on the row instead of losing an update, and
never lock two rows in opposite orders. The lifetime row (minute ALL_TIME) gets every increment too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction

from ..choices import PredictionStatus
from ..drift import KIND_PREFIX, add_feature_bins
from ..models import Feedback, PredictionLog, PredictionRollup, RollupBin
from ..rollups import ALL_TIME, MINUTE_SPAN, QUARTER_SPAN, SCALARS, Sums, minute_of, quarter_of

Key = tuple[int, int, datetime]  # (deployment id, model version id, minute)
STATEMENT_ROWS = 500


def rollup_sums_for_logs(rows: Iterable[tuple]) -> dict[Key, Sums]:
    """Sums per minute (and lifetime) of (deployment id, version id, served_at, status, latency ms) rows."""
    out: dict[Key, Sums] = {}
    minutes: dict[int, datetime] = {}
    for deployment_id, version_id, served_at, status, latency_ms in rows:
        # The writer's hot loop: the minute as an integer first, its datetime once per minute.
        epoch_minute = int(served_at.timestamp() // 60)
        minute = minutes.get(epoch_minute)
        if minute is None:
            minute = minutes[epoch_minute] = minute_of(served_at)
        key = (deployment_id, version_id, minute)
        sums = out.get(key)
        if sums is None:
            sums = out[key] = Sums()
        sums.add_request(status, latency_ms)
    return _with_lifetime(out)


def _with_lifetime(out: dict[Key, Sums]) -> dict[Key, Sums]:
    for (deployment_id, version_id, _), sums in list(out.items()):
        lifetime = out.get((deployment_id, version_id, ALL_TIME))
        if lifetime is None:
            lifetime = out[(deployment_id, version_id, ALL_TIME)] = Sums()
        lifetime.merge(sums)
    return out


def rollup_sums_for_feedback(rows: Iterable[Feedback]) -> dict[Key, Sums]:
    out: dict[Key, Sums] = {}
    for row in rows:
        for minute in (minute_of(row.served_at), ALL_TIME):
            key = (row.deployment_id, row.model_version_id, minute)
            sums = out.get(key)
            if sums is None:
                sums = out[key] = Sums()
            sums.add_feedback(
                n=row.n,
                n_correct=row.n_correct,
                sq_error_sum=row.sq_error_sum,
                sq_error_sq_sum=row.sq_error_sq_sum,
                log_loss_sum=row.log_loss_sum,
                calibration=row.calibration,
            )
    return out


def _with_quarters(sums: dict[Key, Sums]) -> dict[tuple, Sums]:
    """(deployment, version, span, start) -> Sums: each minute's sums, and added up per quarter hour."""
    out: dict[tuple, Sums] = {}
    for (d, v, minute), minute_sums in sums.items():
        out[(d, v, MINUTE_SPAN, minute)] = minute_sums
    for (d, v, minute), minute_sums in sums.items():
        if minute != ALL_TIME:
            quarter = out.get((d, v, QUARTER_SPAN, quarter_of(minute)))
            if quarter is None:
                quarter = out[(d, v, QUARTER_SPAN, quarter_of(minute))] = Sums()
            quarter.merge(minute_sums)
    return out


def rollups_add(sums: dict[Key, Sums], *, connection=None) -> None:
    """Adds per-minute `sums` to the stored rollups, minute and quarter-hour rows (negative values
    subtract: the rebuild's lifetime delta)."""
    if not sums:
        return
    connection = connection or transaction.get_connection()
    minute_field = PredictionRollup._meta.get_field("minute")
    spans = _with_quarters(sums)
    keys = sorted(spans)
    scalar_rows, bin_rows = [], []
    for key in keys:
        d, v, span, start = key
        prepared = minute_field.get_db_prep_value(start, connection)
        scalar_rows.append((d, v, span, prepared, *(spans[key].values[s] for s in SCALARS)))
        for (kind, k), (count, correct, value) in sorted(spans[key].bins.items()):
            # Drift is read per quarter hour: feature bins (most of a minute's bins) only go there.
            if span != QUARTER_SPAN and kind.startswith(KIND_PREFIX):
                continue
            bin_rows.append((d, v, span, prepared, kind, k, count, correct, value))
    with connection.cursor() as cursor:
        _upsert(
            cursor,
            connection,
            PredictionRollup,
            ["deployment_id", "model_version_id", "span", "minute"],
            list(SCALARS),
            scalar_rows,
        )
        _upsert(
            cursor,
            connection,
            RollupBin,
            ["deployment_id", "model_version_id", "span", "minute", "kind", "bin"],
            ["count", "correct", "value_sum"],
            bin_rows,
        )


def _upsert(cursor, connection, model, key_columns: list[str], add_columns: list[str], rows: list[tuple]) -> None:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(c) for c in key_columns + add_columns)
    placeholder = "(" + ", ".join(["%s"] * (len(key_columns) + len(add_columns))) + ")"
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + EXCLUDED.{quote(c)}" for c in add_columns)
    for start in range(0, len(rows), STATEMENT_ROWS):
        chunk = rows[start : start + STATEMENT_ROWS]
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholder] * len(chunk))} "
            f"ON CONFLICT ({', '.join(quote(c) for c in key_columns)}) DO UPDATE SET {updates}",
            [value for row in chunk for value in row],
        )


def stored_rollup_sums(*, deployment_ids: list[int] | None, start: datetime, end: datetime) -> dict[Key, Sums]:
    """The stored minute rows in [start, end) (lifetime and quarter-hour rows aside)."""
    rows = PredictionRollup.objects.filter(span=MINUTE_SPAN, minute__gte=start, minute__lt=end).exclude(minute=ALL_TIME)
    bins = RollupBin.objects.filter(span=MINUTE_SPAN, minute__gte=start, minute__lt=end).exclude(minute=ALL_TIME)
    if deployment_ids is not None:
        rows, bins = rows.filter(deployment_id__in=deployment_ids), bins.filter(deployment_id__in=deployment_ids)
    out: dict[Key, Sums] = {}
    for row in rows.values("deployment_id", "model_version_id", "minute", *SCALARS):
        key = (row["deployment_id"], row["model_version_id"], row["minute"])
        out[key] = Sums(values={s: row[s] for s in SCALARS})
    for d, v, m, kind, k, count, correct, value in bins.values_list(
        "deployment_id", "model_version_id", "minute", "kind", "bin", "count", "correct", "value_sum"
    ):
        out.setdefault((d, v, m), Sums()).add_bin(kind, k, count, correct, value)
    return out


def raw_sums(*, deployment_ids: list[int] | None, start: datetime, end: datetime) -> dict[Key, Sums]:
    """The same sums recomputed from the raw logs and feedback served in [start, end), per minute."""
    logs = PredictionLog.objects.filter(served_at__gte=start, served_at__lt=end)
    feedback = Feedback.objects.filter(served_at__gte=start, served_at__lt=end)
    if deployment_ids is not None:
        logs, feedback = (
            logs.filter(deployment_id__in=deployment_ids),
            feedback.filter(deployment_id__in=deployment_ids),
        )
    out: dict[Key, Sums] = {}
    fields = ("deployment_id", "model_version_id", "served_at", "status", "latency_ms")
    for key, sums in rollup_sums_for_logs(logs.values_list(*fields).iterator(chunk_size=5000)).items():
        if key[2] != ALL_TIME:
            out[key] = sums
    drift_rows = (
        logs.filter(status=PredictionStatus.OK)
        .exclude(features={})
        .values_list("deployment_id", "model_version_id", "served_at", "features")
    )
    add_feature_bins(out, ((d, v, minute_of(t), f) for d, v, t, f in drift_rows.iterator(chunk_size=5000)))
    feedback_rows = feedback.only(
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
    for key, sums in rollup_sums_for_feedback(feedback_rows.iterator(chunk_size=5000)).items():
        if key[2] != ALL_TIME:
            out.setdefault(key, Sums()).merge(sums)
    return out


@transaction.atomic
def rollups_rebuild(*, start: datetime, end: datetime, deployment_ids: list[int] | None = None) -> int:
    """Recomputes the rollups of the quarter hours from the one `start` is in to the one `end` is in
    from the raw rows (minute and quarter rows) and moves the lifetime rows by the difference;
    returns the minute rows written.

    On PostgreSQL the rollup tables are locked first, so writers wait for the rebuild: a writer whose
    log rows are not committed yet adds its increments after it, one whose rows are committed is in
    what the rebuild reads. Minutes older than the raw retention have no raw rows left: rebuilding
    them would empty them, so pick `start` within MONITORING_RAW_RETENTION_DAYS.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {PredictionRollup._meta.db_table}, {RollupBin._meta.db_table} IN EXCLUSIVE MODE"
            )
    start = quarter_of(start)
    end = quarter_of(end) + timedelta(minutes=15)
    old = stored_rollup_sums(deployment_ids=deployment_ids, start=start, end=end)
    new = raw_sums(deployment_ids=deployment_ids, start=start, end=end)
    for model in (PredictionRollup, RollupBin):
        rows = model.objects.filter(minute__gte=start, minute__lt=end).exclude(minute=ALL_TIME)
        if deployment_ids is not None:
            rows = rows.filter(deployment_id__in=deployment_ids)
        rows.delete()
    lifetime: dict[Key, Sums] = {}
    for (d, v, _), sums in new.items():
        lifetime.setdefault((d, v, ALL_TIME), Sums()).merge(sums)
    for (d, v, _), sums in old.items():
        lifetime.setdefault((d, v, ALL_TIME), Sums()).merge(Sums().minus(sums))
    rollups_add({**new, **lifetime}, connection=connection)
    # A lifetime delta of zero bins leaves zero-count bin rows behind; they mean nothing.
    RollupBin.objects.filter(minute=ALL_TIME, count=0, correct=0, value_sum=0).delete()
    return len(new)
