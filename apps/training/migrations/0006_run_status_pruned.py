"""PRUNED joins the run statuses: a run stopped by a tuning pruner ends PRUNED, not CANCELLED.

Runs that ended before this as CANCELLED with stop reason "pruned" are moved to PRUNED, each with a
RunEvent saying so, so that old and new pruned runs read the same. Backwards, PRUNED runs go back to
CANCELLED (their stop reason still says "pruned")."""

from django.db import migrations, models
from django.utils import timezone

REASON = "stop reason was pruned: one status for pruned runs (migration training 0006)"


def forward(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    RunEvent = apps.get_model("training", "RunEvent")
    now = timezone.now()
    runs = list(TrainingRun.objects.filter(status="cancelled", stop_reason="pruned").values_list("pk", "attempts"))
    RunEvent.objects.bulk_create(
        [
            RunEvent(
                run_id=pk, from_status="cancelled", to_status="pruned", attempt=attempts, reason=REASON, created_at=now
            )
            for pk, attempts in runs
        ]
    )
    TrainingRun.objects.filter(pk__in=[pk for pk, _ in runs]).update(status="pruned")


def backward(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    TrainingRun.objects.filter(status="pruned").update(status="cancelled", stop_reason="pruned")


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0005_housekeeping_queue_and_orphan_cleanup"),
    ]

    operations = [
        migrations.AlterField(
            model_name="trainingrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                    ("pruned", "Pruned"),
                ],
                db_index=True,
                default="queued",
                max_length=10,
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
