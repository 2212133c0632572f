"""Per-minute rollups stand in for the raw rows: the same counts, percentiles within one bin, the
same feedback sums in the minute each answer was served in, and a rebuild that gives what the writer
and the feedback service added up incrementally."""

import time
from datetime import timedelta

import numpy as np
import pandas as pd
from django.core.management import call_command

from apps.deployments.selectors import deployment_version_labels
from apps.monitoring.histogram import latency_bin
from apps.monitoring.models import Feedback, PredictionLog, PredictionRollup, RollupBin
from apps.monitoring.rollups import ALL_TIME
from apps.monitoring.selectors import deployment_series, version_windows

from .traffic import label, store_traffic


def snapshot() -> list[tuple]:
    rows = [
        (
            "r",
            r.deployment_id,
            r.model_version_id,
            r.span,
            r.minute.isoformat(),
            r.requests,
            r.ok,
            r.client_errors,
            r.server_errors,
            round(r.latency_ms_sum, 6),
            r.feedback_rows,
            r.feedback_correct,
            round(r.sq_error_sum, 6),
            round(r.sq_error_sq_sum, 6),
            r.scored_rows,
            round(r.log_loss_sum, 6),
        )
        for r in PredictionRollup.objects.all()
    ]
    bins = [
        (
            "b",
            b.deployment_id,
            b.model_version_id,
            b.span,
            b.minute.isoformat(),
            b.kind,
            b.bin,
            b.count,
            b.correct,
            round(b.value_sum, 6),
        )
        for b in RollupBin.objects.exclude(count=0)
    ]
    return sorted(rows + bins)


def raw_frames(deployment):
    logs = pd.DataFrame(
        list(
            PredictionLog.objects.filter(deployment=deployment).values(
                "id", "model_version_id", "served_at", "status", "latency_ms"
            )
        )
    )
    logs["minute"] = logs["served_at"].dt.floor("min")
    feedback = pd.DataFrame(
        list(
            Feedback.objects.filter(deployment=deployment).values("prediction_id", "model_version_id", "n", "n_correct")
        )
    )
    return logs, feedback


def test_rollups_equal_the_raw_aggregates_late_feedback_lands_in_its_minute_and_a_rebuild_changes_nothing(
    deployment, two_versions
):
    champion, challenger = two_versions
    # Three hours ago, two minutes and a bit before a quarter hour: the windows read raw rows for the
    # first part-minute, minute rows up to the quarter and quarter-hour rows after it.
    start = (time.time() // 900) * 900 - 3 * 3600 - 137.5
    lines = store_traffic(
        deployment, champion, start=start, seconds=240, requests=300, seed=1, latency_ms=4
    ) + store_traffic(deployment, challenger, start=start, seconds=240, requests=200, seed=2, latency_ms=12)
    label(deployment, lines, share=0.6)
    logs, feedback = raw_frames(deployment)
    assert len(logs) == 500 and len(PredictionRollup.objects.filter(minute=ALL_TIME)) == 2

    # Per minute and version, the rollup row is the raw rows' counts and the feedback on the answers
    # served in that minute, however late it came.
    served = logs.set_index("id")
    feedback["minute"] = served.loc[feedback["prediction_id"], "minute"].to_numpy()
    rollups = {
        (r.model_version_id, pd.Timestamp(r.minute)): r
        for r in PredictionRollup.objects.filter(deployment=deployment, span=60).exclude(minute=ALL_TIME)
    }
    minutes = logs.groupby(["model_version_id", "minute"])
    assert set(rollups) == set(minutes.groups) and len(rollups) >= 8
    for (version_id, minute), group in minutes:
        row = rollups[(version_id, minute)]
        assert (row.requests, row.ok, row.client_errors, row.server_errors) == (
            len(group),
            (group.status == "ok").sum(),
            (group.status == "client_error").sum(),
            (group.status == "server_error").sum(),
        )
        labelled = feedback[(feedback.model_version_id == version_id) & (feedback.minute == minute)]
        assert (row.feedback_rows, row.feedback_correct) == (labelled.n.sum(), labelled.n_correct.sum())

    # A window over the rollups: the counts and accuracy exactly, percentiles within one bin.
    since = pd.Timestamp(start, unit="s", tz="UTC").to_pydatetime()
    windows = version_windows(deployment=deployment, since=since)
    for version in (champion, challenger):
        window, mine = windows[version.pk], logs[logs.model_version_id == version.pk]
        latencies = mine.latency_ms[mine.status == "ok"].to_numpy()
        assert (window.requests, window.server_errors) == (len(mine), (mine.status == "server_error").sum())
        for q, estimate in ((50, window.p50_ms), (95, window.p95_ms), (99, window.p99_ms)):
            assert abs(latency_bin(estimate) - latency_bin(np.percentile(latencies, q))) <= 1, q
        labelled = feedback[feedback.model_version_id == version.pk]
        assert window.accuracy == labelled.n_correct.sum() / labelled.n.sum()
        assert window.feedback_rows == labelled.n.sum() and window.log_loss is not None
        assert sum(b["count"] for b in window.calibration) == labelled.n.sum()
    # The dashboard's day (15-minute buckets, from the quarter-hour rows) counts every request once.
    day = deployment_series(
        deployment=deployment, labels=deployment_version_labels(deployment=deployment), window="24h"
    )
    assert sum(p["count"] for v in day["versions"] for p in v["points"]) == len(logs)
    assert sum(p["feedback"] for v in day["versions"] for p in v["points"]) == feedback.n.sum()

    before = snapshot()
    assert any(row[0] == "b" and row[5].startswith("f:") for row in before), "served features are binned too"
    assert {row[3] for row in before} == {60, 900}
    call_command("rebuild_rollups", since=since.isoformat(), stdout=open("/dev/null", "w"))
    assert snapshot() == before


def test_sending_the_same_ground_truth_twice_counts_it_once(deployment, champion):
    lines = store_traffic(deployment, champion, start=time.time() - 120, seconds=60, requests=40, seed=3)
    label(deployment, lines)
    once = snapshot()
    label(deployment, lines)
    assert snapshot() == once


def test_drift_uses_the_training_profiles_fixed_bins_so_it_does_not_grow_with_traffic_and_warns_past_the_thresholds(
    deployment, champion
):
    from apps.monitoring.selectors import deployment_drift, drift_warnings, served_drift_warnings

    start = time.time() - 3600
    since = pd.Timestamp(start - 60, unit="s", tz="UTC").to_pydatetime()
    store_traffic(deployment, champion, start=start, seconds=60, requests=250, seed=5)
    small = deployment_drift(deployment=deployment, versions=[champion], since=since)[champion]
    store_traffic(deployment, champion, start=start + 60, seconds=60, requests=2000, seed=6)
    large = deployment_drift(deployment=deployment, versions=[champion], since=since)[champion]
    # f1 is served as it was trained (standard normal), two values per answer: about 0.9 x 2 per OK one.
    assert large["f1"]["served_values"] > 8 * small["f1"]["served_values"] > 8 * 300
    for drift in (small, large):
        assert drift["f1"]["psi"] < 0.1 and drift["f1"]["level"] == "ok" and 0 <= drift["f1"]["js"] < 0.05
    assert large["f1"]["psi"] <= small["f1"]["psi"] + 0.02, "more traffic does not make the same data drift"

    # Shifted traffic later on, in a quarter hour (drift's resolution) after the earlier traffic's.
    later = (start // 900 + 2) * 900
    store_traffic(deployment, champion, start=later, seconds=60, requests=600, seed=7, f3_shift=1.5)
    shifted = deployment_drift(
        deployment=deployment, versions=[champion], since=pd.Timestamp(later, unit="s", tz="UTC").to_pydatetime()
    )[champion]
    assert shifted["f3"]["level"] == "alert" and shifted["f3"]["psi"] > 0.25 and shifted["f3"]["js"] > 0.05
    assert shifted["f1"]["level"] == "ok"
    assert [w["feature"] for w in drift_warnings(shifted)] == ["f3"]
    # The admin's drift panel (prediction logs page) finds it from the versions that served then.
    panel = served_drift_warnings(
        window=timedelta(seconds=60), now=pd.Timestamp(later + 60, unit="s", tz="UTC").to_pydatetime()
    )
    assert [(w["deployment"], w["version"], w["feature"], w["level"]) for w in panel] == [
        (deployment.name, str(champion.version), "f3", "alert")
    ]


def test_a_version_with_history_counts_only_each_lines_latest_row_for_drift_and_others_every_row():
    from apps.monitoring.drift import served_values

    line = {"close": [101.0, 102.0, 103.5], "volume": [7.0, 8.0, 9.0]}
    assert served_values(line, history=True) == {"close": [103.5], "volume": [9.0]}
    assert served_values(line, history=False) == line
