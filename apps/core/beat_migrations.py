"""The migration operation that creates (and on reverse removes) one django-celery-beat task.

Beat tasks are created by migrations, not at run time, so every migrated database has them whether
or not seed_demo ran. Migration files import this module: keep its behaviour and signature stable,
since changing it changes what old migrations do. It only touches historical models
(`apps.get_model`), never the current ones.
"""

from django.db import migrations
from django.utils import timezone


class PeriodicTaskOperation(migrations.RunPython):
    """Forward: the interval schedule (reused when one exists) and the named task, enabled;
    update_or_create keeps it idempotent. Reverse: the named task is deleted (the schedule stays,
    other tasks may share it). Both bump beat's change counter, because django-celery-beat's
    signals, which normally do that, do not run in migrations."""

    def __init__(
        self,
        *,
        name: str,
        task: str,
        every: int,
        queue: str,
        description: str,
        expire_seconds: int | None = None,
        period: str = "seconds",
    ):
        self.spec = {
            "name": name,
            "task": task,
            "every": every,
            "queue": queue,
            "description": description,
            "expire_seconds": expire_seconds,
            "period": period,
        }
        super().__init__(self.create, self.remove)

    def create(self, apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        spec = self.spec
        # filter().first(), not get_or_create: an operator may have made the same schedule twice.
        interval = IntervalSchedule.objects.filter(every=spec["every"], period=spec["period"]).first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=spec["every"], period=spec["period"])
        PeriodicTask.objects.update_or_create(
            name=spec["name"],
            defaults={
                "task": spec["task"],
                "interval": interval,
                "queue": spec["queue"],
                "enabled": True,
                "expire_seconds": spec["expire_seconds"],
                "description": spec["description"],
            },
        )
        _announce_change(apps)

    def remove(self, apps, schema_editor):
        apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=self.spec["name"]).delete()
        _announce_change(apps)

    def deconstruct(self):
        # The spec, not the bound methods: squashmigrations can then write this operation out again.
        return self.__class__.__qualname__, [], dict(self.spec)

    def describe(self):
        return f"Beat task {self.spec['name']!r}"


def _announce_change(apps) -> None:
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )
