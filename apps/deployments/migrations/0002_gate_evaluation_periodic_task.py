"""The beat task that evaluates the gates of running rollouts (deployments.evaluate_rollouts)."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="deployments: evaluate rollout gates",
            task="deployments.evaluate_rollouts",
            every=15,
            queue="default",
            description="Check error rate, p99 latency and the sequential accuracy test of running "
            "rollouts; advance, complete or roll back when the gates decide.",
        ),
    ]
