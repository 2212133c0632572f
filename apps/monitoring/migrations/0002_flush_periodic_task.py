"""The beat task that moves buffered prediction logs from Redis into PostgreSQL."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="monitoring: flush prediction logs",
            task="monitoring.flush_prediction_logs",
            every=2,
            expire_seconds=30,
            queue="default",
            description="Drain the Redis prediction-log buffer into PostgreSQL in batches.",
        ),
    ]
