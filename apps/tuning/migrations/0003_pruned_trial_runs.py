"""A pruned trial's run reads PRUNED. Before, a prune that reached a run after its last epoch let the
run end SUCCEEDED beside a PRUNED trial (trial 10 / run 19 in the issue); such runs are moved to
PRUNED with a RunEvent saying why. Their artifact stays with the run (nothing registered it: trial
runs register no model version, and a study registers only its best completed trial)."""

from django.db import migrations
from django.utils import timezone

REASON = "its trial was pruned: a pruned trial's run is PRUNED, never SUCCEEDED (migration tuning 0003)"


def forward(apps, schema_editor):
    Trial = apps.get_model("tuning", "Trial")
    TrainingRun = apps.get_model("training", "TrainingRun")
    RunEvent = apps.get_model("training", "RunEvent")
    now = timezone.now()
    runs = list(
        TrainingRun.objects.filter(
            pk__in=Trial.objects.filter(status="pruned", run__isnull=False).values("run_id"),
            status="succeeded",
        ).values_list("pk", "attempts")
    )
    RunEvent.objects.bulk_create(
        [
            RunEvent(
                run_id=pk, from_status="succeeded", to_status="pruned", attempt=attempts, reason=REASON, created_at=now
            )
            for pk, attempts in runs
        ]
    )
    TrainingRun.objects.filter(pk__in=[pk for pk, _ in runs]).update(status="pruned", stop_reason="pruned")


class Migration(migrations.Migration):
    dependencies = [
        ("tuning", "0002_study_keeper_periodic_task"),
        ("training", "0006_run_status_pruned"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
