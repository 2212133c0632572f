"""The beat task that applies the monitoring retention (monitoring.prune_old_rows), hourly, on the
housekeeping queue."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_prediction_rollups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="monitoring: delete rows past retention",
            task="monitoring.prune_old_rows",
            every=3600,
            expire_seconds=3000,
            queue="housekeeping",
            description="Delete raw prediction logs and feedback older than MONITORING_RAW_RETENTION_DAYS "
            "and rollups older than MONITORING_ROLLUP_RETENTION_DAYS, in bounded batches.",
        ),
    ]
