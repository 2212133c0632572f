"""Retention: raw prediction logs and feedback for MONITORING_RAW_RETENTION_DAYS, the per-minute
rollups for MONITORING_ROLLUP_RETENTION_DAYS (lifetime rows always).

Deleted in batches of MONITORING_RETENTION_BATCH rows, each its own short transaction, so the beat
task never holds locks on millions of rows and the log writers' inserts go on meanwhile. Feedback
goes before its prediction logs (it references them, and a feedback row's served_at is its log's).
Plain DELETE … WHERE id IN (SELECT … LIMIT n) rather than the ORM's delete(), which would load every
row to follow the cascade in Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import Feedback, PredictionLog, PredictionRollup, RollupBin
from ..rollups import ALL_TIME


@dataclass
class Pruned:
    feedback: int = 0
    prediction_logs: int = 0
    rollups: int = 0
    rollup_bins: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _delete_older(model, column: str, cutoff: datetime, batch: int, *, keep_all_time: bool = False) -> int:
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    field = model._meta.get_field(column)
    keep = f" AND {quote(field.column)} <> %s" if keep_all_time else ""
    params = [field.get_db_prep_value(cutoff, connection)]
    if keep_all_time:
        params.append(field.get_db_prep_value(ALL_TIME, connection))
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table} "
                f"WHERE {quote(field.column)} < %s{keep} LIMIT %s)",
                [*params, batch],
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total


def monitoring_prune(
    *,
    now: datetime | None = None,
    raw_days: int | None = None,
    rollup_days: int | None = None,
    batch: int | None = None,
) -> Pruned:
    """Deletes what is older than the retention settings (arguments override them); returns the counts."""
    now = now or timezone.now()
    raw_cutoff = now - timedelta(days=settings.MONITORING_RAW_RETENTION_DAYS if raw_days is None else raw_days)
    rollup_cutoff = now - timedelta(
        days=settings.MONITORING_ROLLUP_RETENTION_DAYS if rollup_days is None else rollup_days
    )
    batch = int(batch or settings.MONITORING_RETENTION_BATCH)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    return Pruned(
        feedback=_delete_older(Feedback, "served_at", raw_cutoff, batch),
        prediction_logs=_delete_older(PredictionLog, "served_at", raw_cutoff, batch),
        rollups=_delete_older(PredictionRollup, "minute", rollup_cutoff, batch, keep_all_time=True),
        rollup_bins=_delete_older(RollupBin, "minute", rollup_cutoff, batch, keep_all_time=True),
    )


def monitoring_storage() -> dict:
    """Per monitoring table: rows (PostgreSQL's estimate, exact elsewhere) and bytes on disk (PostgreSQL
    only, indexes included); the oldest raw prediction log and feedback; the retention settings."""
    tables = []
    for model in (PredictionLog, Feedback, PredictionRollup, RollupBin):
        table = model._meta.db_table
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.oid = to_regclass(%s)",
                    [table],
                )
                rows, size = cursor.fetchone() or (0, 0)
        else:
            rows, size = model.objects.count(), None
        tables.append(
            {
                "model": model._meta.verbose_name_plural,
                "table": table,
                "rows": int(rows),
                "bytes": None if size is None else int(size),
            }
        )
    oldest_log = PredictionLog.objects.order_by("served_at").values_list("served_at", flat=True).first()
    oldest_feedback = Feedback.objects.order_by("served_at").values_list("served_at", flat=True).first()
    return {
        "tables": tables,
        "oldest_prediction_log": oldest_log,
        "oldest_feedback": oldest_feedback,
        "raw_retention_days": settings.MONITORING_RAW_RETENTION_DAYS,
        "rollup_retention_days": settings.MONITORING_ROLLUP_RETENTION_DAYS,
    }
