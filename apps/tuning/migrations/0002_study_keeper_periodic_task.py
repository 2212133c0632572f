"""The beat task that keeps studies going (see apps.tuning.services.trials.studies_keep).

Created here, not at runtime, so every migrated database has it whether or not seed_demo ran."""
from django.db import migrations

TASK_NAME = "tuning: keep studies going"
EVERY_SECONDS = 30


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "tuning.keep_studies", "interval": interval, "queue": "default", "enabled": True,
                  "description": "Record finished trials, launch missing ones, end studies whose budget is spent."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tuning", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
