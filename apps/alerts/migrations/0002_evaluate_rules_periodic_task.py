"""The beat task that checks every alert rule each minute, on the housekeeping queue. Created by a
migration so every migrated database has it; update_or_create keeps it idempotent."""
from django.db import migrations
from django.utils import timezone

NAME = "alerts: evaluate alert rules"
SPEC = {"task": "alerts.evaluate_rules", "every": 60, "expire_seconds": 50, "queue": "housekeeping",
        "description": "Every enabled alert rule is measured over its window from the monitoring rollups; a breach "
                       "that lasts its duration fires (an AlertEvent, pushed to dashboards and webhooks) and "
                       "resolves once the breach ends."}


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval = IntervalSchedule.objects.filter(every=SPEC["every"], period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=SPEC["every"], period="seconds")
    PeriodicTask.objects.update_or_create(
        name=NAME, defaults={"task": SPEC["task"], "interval": interval, "queue": SPEC["queue"], "enabled": True,
                             "expire_seconds": SPEC["expire_seconds"], "description": SPEC["description"]})
    # Beat notices changed rows through this counter (django-celery-beat's signals do not run here).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
