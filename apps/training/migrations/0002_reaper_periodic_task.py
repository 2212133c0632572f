"""The beat task that requeues or fails runs whose worker died (see training_pipeline.training_runs_reap)."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="training: reap runs with a stale heartbeat",
            task="training.reap_stale_runs",
            every=30,
            queue="default",
            description="Requeue or fail RUNNING training runs whose heartbeat is stale.",
        ),
    ]
