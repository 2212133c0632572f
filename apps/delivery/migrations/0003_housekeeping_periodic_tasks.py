"""Beat tasks on the housekeeping queue: re-send candidate evaluations whose queue message was lost
(every minute), and archive registry versions never deployed past REGISTRY_ARCHIVE_AFTER_DAYS
(hourly). Names are written out so the migration means the same whenever it runs."""

from django.db import migrations

from apps.core.beat_migrations import PeriodicTaskOperation


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0002_evaluation_dispatches"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        PeriodicTaskOperation(
            name="delivery: re-send evaluations whose message was lost",
            task="delivery.reap_lost_evaluations",
            every=60,
            expire_seconds=50,
            queue="housekeeping",
            description="QUEUED candidate evaluations whose message is neither on the broker nor held by a worker "
            "after DELIVERY_QUEUED_STALE_SECONDS are sent again, then FAILED after "
            "DELIVERY_MAX_DISPATCHES messages.",
        ),
        PeriodicTaskOperation(
            name="registry: archive versions never deployed",
            task="delivery.archive_undeployed_versions",
            every=3600,
            expire_seconds=3000,
            queue="housekeeping",
            description="Versions never deployed, under no alias and older than REGISTRY_ARCHIVE_AFTER_DAYS "
            "(0: off) are archived: kept, hidden from default lists, refused for rollouts and traffic.",
        ),
    ]
