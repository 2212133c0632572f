"""The beat task that evaluates the gates of running rollouts (deployments.evaluate_rollouts).

Created by a migration, not at run time, so every migrated database has it whether or not
seed_demo ran; update_or_create keeps it idempotent."""
from django.db import migrations

TASK_NAME = "deployments: evaluate rollout gates"
EVERY_SECONDS = 15


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval = IntervalSchedule.objects.filter(every=EVERY_SECONDS, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "deployments.evaluate_rollouts", "interval": interval, "queue": "default", "enabled": True,
                  "description": "Check error rate, p99 latency and the sequential accuracy test of running "
                                 "rollouts; advance, complete or roll back when the gates decide."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
