"""Beat tasks on the housekeeping queue: re-send candidate evaluations whose queue message was lost
(every minute), and archive registry versions never deployed past REGISTRY_ARCHIVE_AFTER_DAYS
(hourly). Created by a migration so every migrated database has them; update_or_create keeps it
idempotent. Names are written out so the migration means the same whenever it runs."""
from django.db import migrations
from django.utils import timezone

QUEUE = "housekeeping"
TASKS = {
    "delivery: re-send evaluations whose message was lost": {
        "task": "delivery.reap_lost_evaluations", "every": 60, "expire_seconds": 50,
        "description": "QUEUED candidate evaluations whose message is neither on the broker nor held by a worker "
                       "after DELIVERY_QUEUED_STALE_SECONDS are sent again, then FAILED after "
                       "DELIVERY_MAX_DISPATCHES messages."},
    "registry: archive versions never deployed": {
        "task": "delivery.archive_undeployed_versions", "every": 3600, "expire_seconds": 3000,
        "description": "Versions never deployed, under no alias and older than REGISTRY_ARCHIVE_AFTER_DAYS "
                       "(0: off) are archived: kept, hidden from default lists, refused for rollouts and traffic."},
}


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, spec in TASKS.items():
        interval = IntervalSchedule.objects.filter(every=spec["every"], period="seconds").first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=spec["every"], period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": spec["task"], "interval": interval, "queue": QUEUE, "enabled": True,
                                 "expire_seconds": spec["expire_seconds"], "description": spec["description"]})
    # Beat notices changed rows through this counter (django-celery-beat's signals do not run here).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=list(TASKS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0002_evaluation_dispatches"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
