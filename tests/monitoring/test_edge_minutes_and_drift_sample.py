"""A window's part-minute edge is read from the raw rows once and remembered only while that minute's
rollups stay the same; the drift sample holds each served row once: a history request contributes the
rows its predictions are for, a plain one a bounded uniform draw of its rows."""

import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from apps.deployments.serving import predict as predict_module
from apps.deployments.serving.predict import DRIFT_SAMPLE_ROWS, predictor
from apps.deployments.services.model_deployment_service import deployment_create
from apps.monitoring import selectors
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import log_entry, logs_store, prediction_logs_flush
from apps.monitoring.selectors import version_windows
from tests.deployments.conftest import history_frame, record

from .traffic import label, store_traffic


def counting_raw_reads(monkeypatch) -> list:
    reads = []
    original = selectors._raw_sums

    def counting(**kwargs):
        reads.append(kwargs["part"])
        return original(**kwargs)

    monkeypatch.setattr(selectors, "_raw_sums", counting)
    return reads


def figures(windows) -> dict:
    return {v: (w.requests, w.server_errors, w.p99_ms, w.feedback_rows, w.accuracy) for v, w in windows.items()}


def test_an_edge_minute_is_read_from_the_raw_rows_once_and_again_when_a_late_row_lands_in_it(
    deployment, champion, monkeypatch
):
    # Whole minutes before the window, then a window that starts 20.5 s into a minute.
    minute = datetime.fromtimestamp((time.time() // 60 - 4) * 60, UTC)
    since = minute + timedelta(seconds=20.5)
    lines = store_traffic(deployment, champion, start=minute.timestamp(), seconds=150, requests=120, seed=3)
    # One answer of the edge minute is left unlabelled: its truth arrives late, below.
    held_back = next(
        line for line in lines if line[0]["st"] == "ok" and since.timestamp() <= line[0]["t"] < minute.timestamp() + 60
    )
    label(deployment, [line for line in lines if line is not held_back])
    reads = counting_raw_reads(monkeypatch)

    first = figures(version_windows(deployment=deployment, since=since, feedback_since=since))
    assert sorted(reads) == ["feedback", "requests"]
    again = figures(version_windows(deployment=deployment, since=since, feedback_since=since))
    assert again == first
    assert len(reads) == 2, "the unchanged edge minute was read from the raw rows again"

    # A line flushed late into the edge minute, after the stage began: counted at the next read.
    late = log_entry(
        request_id=str(uuid.uuid4()),
        deployment_id=deployment.pk,
        version_id=champion.pk,
        shadow=False,
        status="server_error",
        latency_ms=3.0,
        n_rows=1,
        inputs_hash="h",
        output=[],
        served_at=since.timestamp() + 10,
    )
    assert logs_store([late]) == []
    after = figures(version_windows(deployment=deployment, since=since, feedback_since=since))
    assert after[champion.pk][:2] == (first[champion.pk][0] + 1, first[champion.pk][1] + 1)
    assert reads.count("requests") == 2 and reads.count("feedback") == 1

    # Late feedback on an answer of the edge minute moves the feedback edge only.
    label(deployment, [held_back])
    with_feedback = figures(version_windows(deployment=deployment, since=since, feedback_since=since))
    assert with_feedback[champion.pk][3] == first[champion.pk][3] + 1
    assert reads.count("feedback") == 2 and reads.count("requests") == 2

    selectors._edge_cache.clear()
    assert figures(version_windows(deployment=deployment, since=since, feedback_since=since)) == with_feedback


@pytest.fixture
def history_deployment(make_version, staff_user):
    version = make_version("history", model_name="drift-history")
    return deployment_create(name="drift-history", model_version=version, user=staff_user)


def logged_features(request_id: str) -> dict:
    prediction_logs_flush()
    return PredictionLog.objects.get(request_id=request_id).features


def test_a_history_request_adds_only_the_rows_its_predictions_are_for_to_the_drift_sample(history_deployment):
    frame = history_frame()
    window = frame[frame["ticker"] == "AAA"].iloc[-30:].drop(columns="y")
    # Newest first: the predicted row is the newest by date, not the last one sent.
    one_entity = window.iloc[::-1].to_dict("records")
    answer = predictor.predict(
        deployment="drift-history", body={"dataframe_records": one_entity}, protocol="mlflow", raw_body=b"{}"
    )
    assert len(answer.predictions) == 1
    assert logged_features(answer.request_id) == {"x": [float(window["x"].iloc[-1])]}

    other = frame[frame["ticker"] == "BBB"].iloc[-30:].drop(columns="y")
    two_entities = window.to_dict("records") + other.to_dict("records")
    answer = predictor.predict(
        deployment="drift-history", body={"dataframe_records": two_entities}, protocol="mlflow", raw_body=b"{}"
    )
    assert len(answer.predictions) == 2
    assert logged_features(answer.request_id) == {"x": [float(window["x"].iloc[-1]), float(other["x"].iloc[-1])]}


def test_a_plain_request_adds_a_bounded_uniform_draw_of_its_rows_to_the_drift_sample(deployment, monkeypatch):
    rows = [record(f1=i / 100, f2=-i / 100, f3=0.5) for i in range(50)]
    answer = predictor.predict(
        deployment="price-direction", body={"instances": rows}, protocol="mlflow", raw_body=b"{}"
    )
    sample = logged_features(answer.request_id)
    assert set(sample) == {"f1", "f2", "f3"}
    assert len(sample["f1"]) == DRIFT_SAMPLE_ROWS == len(set(sample["f1"]))
    # Each sampled value belongs to one sent row, column by column.
    assert all(f2 == -f1 for f1, f2 in zip(sample["f1"], sample["f2"]))

    monkeypatch.setattr(predict_module, "_drift_random", random.Random(7))
    table = predictor.table("price-direction")
    with predictor.state.routing():
        prepared = predictor.prepare(
            table=table,
            body={"instances": rows},
            protocol="mlflow",
            raw_body=b"{}",
            routing_key=None,
            started=time.perf_counter(),
        )
    picks = Counter()
    for _ in range(400):
        picks.update(predict_module._drift_sample(prepared.rows, prepared.served)["f1"])
    # 400 draws of 5 of 50 rows: 40 per row expected, every row drawn, none favoured.
    assert len(picks) == 50
    assert 15 <= min(picks.values()) and max(picks.values()) <= 70, picks

    few = predictor.predict(
        deployment="price-direction", body={"instances": rows[:3]}, protocol="mlflow", raw_body=b"{}"
    )
    assert logged_features(few.request_id)["f1"] == [0.0, 0.01, 0.02]
