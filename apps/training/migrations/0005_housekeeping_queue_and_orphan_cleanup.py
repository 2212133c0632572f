"""Housekeeping beat tasks move from the `default` queue (which the training worker also consumed, so
two long runs starved them) to the `housekeeping` queue that only the housekeeping worker consumes;
and the beat task that removes orphaned attempt and temp folders (services/cleanup.py).

Only rows still on `default` move: a queue an operator chose on purpose is left alone. The names are
written out (not read from settings) so the migration means the same thing whenever it runs."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation

QUEUE = "housekeeping"
MOVED_TASKS = (
    "monitoring.flush_prediction_logs",
    "training.reap_stale_runs",
    "training.retrain_experiment",
    "deployments.evaluate_rollouts",
    "tuning.keep_studies",
)


def move_to_housekeeping(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=MOVED_TASKS, queue__in=["default", ""]).update(queue=QUEUE)
    PeriodicTask.objects.filter(task__in=MOVED_TASKS, queue__isnull=True).update(queue=QUEUE)


def move_back_to_default(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=MOVED_TASKS, queue=QUEUE).update(
        queue="default"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_trainingrun_plugin_and_more"),
        ("monitoring", "0002_flush_periodic_task"),
        ("deployments", "0002_gate_evaluation_periodic_task"),
        ("tuning", "0002_study_keeper_periodic_task"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    # The task's operation runs last, so its bump of beat's change counter also covers the moves;
    # in reverse it runs first, as the old backward() deleted the task before moving the rest back.
    operations = [
        migrations.RunPython(move_to_housekeeping, move_back_to_default),
        PeriodicTaskOperation(
            name="training: remove orphaned attempt and temp folders",
            task="training.remove_orphaned_folders",
            every=3600,
            expire_seconds=1800,
            queue=QUEUE,
            description="Remove attempt, artifact-temp and system-temp folders that killed attempts left "
            "behind (older than TRAINING_ORPHAN_MAX_AGE_SECONDS).",
        ),
    ]
