"""The beat task that checks every alert rule each minute, on the housekeeping queue."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="alerts: evaluate alert rules",
            task="alerts.evaluate_rules",
            every=60,
            expire_seconds=50,
            queue="housekeeping",
            description="Every enabled alert rule is measured over its window from the monitoring rollups; a breach "
            "that lasts its duration fires (an AlertEvent, pushed to dashboards and webhooks) and "
            "resolves once the breach ends.",
        ),
    ]
