"""The beat task that requeues or fails runs whose worker died (see training_pipeline.training_runs_reap).

Created here, not at runtime, so every migrated database has it whether or not seed_demo ran."""
from django.db import migrations

TASK_NAME = "training: reap runs with a stale heartbeat"
EVERY_SECONDS = 30


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "training.reap_stale_runs", "interval": interval, "queue": "default", "enabled": True,
                  "description": "Requeue or fail RUNNING training runs whose heartbeat is stale."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
