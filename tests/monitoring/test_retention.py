"""Retention removes only what is older than its setting, in batches, and admin shows what is stored."""

import time

from django.test import Client
from django.utils import timezone

from apps.monitoring.models import Feedback, PredictionLog, PredictionRollup, RollupBin
from apps.monitoring.rollups import ALL_TIME
from apps.monitoring.tasks import prune_old_rows

from .traffic import label, store_traffic

DAY = 86400


def test_retention_deletes_raw_rows_past_14_days_and_rollups_past_400_in_batches_keeping_the_rest(
    deployment, champion, settings
):
    settings.MONITORING_RETENTION_BATCH = 7  # several batches per table
    now = time.time()
    ancient = store_traffic(deployment, champion, start=now - 401 * DAY, seconds=60, requests=12, seed=1)
    old = store_traffic(deployment, champion, start=now - 15 * DAY, seconds=120, requests=30, seed=2)
    kept = store_traffic(deployment, champion, start=now - 13 * DAY, seconds=120, requests=30, seed=3)
    for lines in (ancient, old, kept):
        label(deployment, lines)
    kept_ids = {entry["r"] for entry, _ in kept}
    rows_before = set(PredictionRollup.objects.values_list("span", "minute"))
    lifetime = PredictionRollup.objects.get(minute=ALL_TIME).requests

    pruned = prune_old_rows()

    assert {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)} == kept_ids
    assert pruned["prediction_logs"] == 42 and pruned["feedback"] > 0
    assert set(Feedback.objects.values_list("prediction__request_id", flat=True)) <= set(
        PredictionLog.objects.values_list("request_id", flat=True)
    )
    cutoff = timezone.now() - timezone.timedelta(days=400)
    rows_after = set(PredictionRollup.objects.values_list("span", "minute"))
    assert rows_after == {(span, m) for span, m in rows_before if m >= cutoff or m == ALL_TIME}
    assert rows_after < rows_before and pruned["rollups"] == len(rows_before - rows_after)
    assert not RollupBin.objects.filter(minute__lt=cutoff).exclude(minute=ALL_TIME).exists()
    assert PredictionRollup.objects.get(minute=ALL_TIME).requests == lifetime, "lifetime counters never shrink"
    assert prune_old_rows() == {"feedback": 0, "prediction_logs": 0, "rollups": 0, "rollup_bins": 0}


def test_admin_shows_table_sizes_the_oldest_raw_row_and_the_retention(deployment, champion, staff_user):
    store_traffic(deployment, champion, start=time.time() - 3 * DAY, seconds=60, requests=5, seed=4)
    client = Client()
    client.force_login(staff_user)
    page = client.get("/admin/monitoring/predictionlog/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Storage and retention" in text and "monitoring_predictionlog" in text and "monitoring_rollupbin" in text
    assert "Oldest raw prediction log: <strong>none" not in text
    assert "kept 14 days, rollups 400 days" in text
    assert "No served feature is past the warning threshold." in text
