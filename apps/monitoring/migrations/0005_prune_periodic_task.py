"""The beat task that applies the monitoring retention (monitoring.prune_old_rows), hourly, on the
housekeeping queue. Created by a migration so every migrated database has it; update_or_create
keeps it idempotent."""
from django.db import migrations

TASK_NAME = "monitoring: delete rows past retention"
EVERY_SECONDS = 3600


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval = IntervalSchedule.objects.filter(every=EVERY_SECONDS, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "monitoring.prune_old_rows", "interval": interval, "queue": "housekeeping", "enabled": True,
                  "expire_seconds": 3000,
                  "description": "Delete raw prediction logs and feedback older than MONITORING_RAW_RETENTION_DAYS "
                                 "and rollups older than MONITORING_ROLLUP_RETENTION_DAYS, in bounded batches."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_prediction_rollups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
