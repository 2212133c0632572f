"""Housekeeping beat tasks move from the `default` queue (which the training worker also consumed, so
two long runs starved them) to the `housekeeping` queue that only the housekeeping worker consumes;
and the beat task that removes orphaned attempt and temp folders (services/cleanup.py).

Only rows still on `default` move: a queue an operator chose on purpose is left alone. The names are
written out (not read from settings) so the migration means the same thing whenever it runs."""
from django.db import migrations
from django.utils import timezone

QUEUE = "housekeeping"
MOVED_TASKS = (
    "monitoring.flush_prediction_logs",
    "training.reap_stale_runs",
    "training.retrain_experiment",
    "deployments.evaluate_rollouts",
    "tuning.keep_studies",
)
CLEANUP_NAME = "training: remove orphaned attempt and temp folders"
CLEANUP_TASK = "training.remove_orphaned_folders"
CLEANUP_EVERY_SECONDS = 3600


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=MOVED_TASKS, queue__in=["default", ""]).update(queue=QUEUE)
    PeriodicTask.objects.filter(task__in=MOVED_TASKS, queue__isnull=True).update(queue=QUEUE)
    interval = IntervalSchedule.objects.filter(every=CLEANUP_EVERY_SECONDS, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=CLEANUP_EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=CLEANUP_NAME,
        defaults={"task": CLEANUP_TASK, "interval": interval, "queue": QUEUE, "enabled": True, "expire_seconds": 1800,
                  "description": "Remove attempt, artifact-temp and system-temp folders that killed attempts left "
                                 "behind (older than TRAINING_ORPHAN_MAX_AGE_SECONDS)."},
    )
    # Beat notices changed rows through this counter (django-celery-beat's signals do not run here).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=CLEANUP_NAME).delete()
    PeriodicTask.objects.filter(task__in=MOVED_TASKS, queue=QUEUE).update(queue="default")


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_trainingrun_plugin_and_more"),
        ("monitoring", "0002_flush_periodic_task"),
        ("deployments", "0002_gate_evaluation_periodic_task"),
        ("tuning", "0002_study_keeper_periodic_task"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
