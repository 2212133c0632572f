"""The beat task that moves buffered prediction logs from Redis into PostgreSQL.

Created by a migration, not at run time, so every migrated database has it whether or not
seed_demo ran; update_or_create keeps it idempotent."""
from django.db import migrations

TASK_NAME = "monitoring: flush prediction logs"
EVERY_SECONDS = 2


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval = IntervalSchedule.objects.filter(every=EVERY_SECONDS, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "monitoring.flush_prediction_logs", "interval": interval, "queue": "default",
                  "enabled": True, "expire_seconds": 30,
                  "description": "Drain the Redis prediction-log buffer into PostgreSQL in batches."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
