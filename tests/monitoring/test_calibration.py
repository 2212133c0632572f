"""Log loss and calibration from ground truth on logged class probabilities: per feedback row, per
version window, in the summary API and in /metrics."""

import math
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from apps.monitoring.models import Feedback
from apps.monitoring.selectors import version_windows
from apps.monitoring.services.logbuffer import prediction_logs_flush
from tests.deployments.conftest import classification_frame, record

PREDICT = "/api/v1/deployments/price-direction/predict"
FEEDBACK = "/api/v1/deployments/price-direction/feedback"
SUMMARY = "/api/v1/monitoring/deployments/price-direction/summary?window=1h"
COLUMNS = ["f1", "f2", "f3"]


def predict_with_probabilities(client, frame):
    body = {
        "dataframe_split": {"columns": COLUMNS, "data": frame[COLUMNS].values.tolist()},
        "params": {"probabilities": True},
    }
    response = client.post(PREDICT, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def expected_scores(answers, truths, classes):
    """Log loss and the reliability table computed here from the answers alone, with numpy."""
    probabilities = np.concatenate([np.asarray(a["probabilities"]) for a in answers])
    predicted = np.concatenate([np.asarray(a["predictions"]) for a in answers])
    truth = np.concatenate([np.asarray(t) for t in truths])
    columns = np.array([classes.index(t) for t in truth])
    p_true = probabilities[np.arange(len(truth)), columns]
    log_loss = float(-np.mean(np.log(np.clip(p_true, 1e-15, 1.0))))
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, 11)
    counts, _ = np.histogram(confidence, bins=edges)
    table = []
    for k in np.flatnonzero(counts):
        inside = (confidence >= edges[k]) & ((confidence < edges[k + 1]) | (k == 9))
        table.append(
            {
                "lower": round(edges[k], 2),
                "upper": round(edges[k + 1], 2),
                "count": int(counts[k]),
                "mean_confidence": float(confidence[inside].mean()),
                "accuracy": float((predicted[inside] == truth[inside]).mean()),
            }
        )
    return log_loss, table


def assert_table(actual, expected):
    assert [(b["lower"], b["upper"], b["count"]) for b in actual] == [
        (b["lower"], b["upper"], b["count"]) for b in expected
    ]
    for got, want in zip(actual, expected):
        assert got["mean_confidence"] == pytest.approx(want["mean_confidence"], abs=1e-4)
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-4)


def test_feedback_on_logged_probabilities_gives_the_windows_log_loss_and_reliability_table(
    deployment, champion, analyst_api, staff_api
):
    classes = champion.signature["classes"]
    # Labels flipped at random, so the model is wrong some of the time and its confidence is spread.
    frames = [classification_frame(n=40, seed=21, flip=0.3), classification_frame(n=25, seed=22, flip=0.3)]
    answers = [predict_with_probabilities(analyst_api, frame) for frame in frames]
    truths = [frame["label"].tolist() for frame in frames]
    response = staff_api.post(
        FEEDBACK,
        {"feedback": [{"request_id": a["request_id"], "ground_truth": t} for a, t in zip(answers, truths)]},
        format="json",
    )
    assert response.status_code == 200, response.content
    expected_loss, expected_table = expected_scores(answers, truths, classes)

    rows = {str(f.prediction.request_id): f for f in Feedback.objects.select_related("prediction")}
    first_loss, _ = expected_scores(answers[:1], truths[:1], classes)
    assert rows[answers[0]["request_id"]].log_loss_sum == pytest.approx(first_loss * 40, rel=1e-9)
    assert sum(rows[answers[0]["request_id"]].calibration["count"]) == 40

    window = version_windows(deployment=deployment, since=timezone.now() - timedelta(hours=1))[champion.pk]
    assert window.feedback_rows == 65
    assert window.log_loss == pytest.approx(expected_loss, rel=1e-9)
    assert_table(window.calibration, expected_table)
    assert sum(b["count"] for b in window.calibration) == 65
    assert 0 < window.accuracy < 1, "some answers are wrong, so the test says something about calibration"

    summary = analyst_api.get(SUMMARY).json()
    version = next(v for v in summary["versions"] if v["model_version_id"] == champion.pk)
    assert version["log_loss"] == pytest.approx(expected_loss, abs=1e-4)
    assert_table(version["calibration"], expected_table)

    metrics = analyst_api.get("/metrics").content.decode()
    line = next(
        line for line in metrics.splitlines() if line.startswith('mlops_model_log_loss{deployment="price-direction"')
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(expected_loss, rel=1e-6)


def test_a_label_the_model_never_gave_a_probability_costs_the_clipped_log_loss(
    deployment, champion, analyst_api, staff_api
):
    from apps.registry.models import ModelVersion

    answer = analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()
    assert "probabilities" not in answer, "not asked for, yet logged"
    response = staff_api.post(FEEDBACK, {"request_id": answer["request_id"], "ground_truth": "sideways"}, format="json")
    assert response.status_code == 400, "a version whose signature names its classes refuses other labels"
    # A version registered before signatures named their classes cannot tell: the label is scored.
    signature = {k: v for k, v in champion.signature.items() if k != "classes"}
    ModelVersion.objects.filter(pk=champion.pk).update(signature=signature)
    response = staff_api.post(FEEDBACK, {"request_id": answer["request_id"], "ground_truth": "sideways"}, format="json")
    assert response.status_code == 200, response.content
    feedback = Feedback.objects.get()
    assert feedback.n_correct == 0
    assert feedback.log_loss_sum == pytest.approx(-math.log(1e-15))
    assert sum(feedback.calibration["correct"]) == 0 and sum(feedback.calibration["count"]) == 1


def test_answers_logged_without_probabilities_keep_their_accuracy_and_have_no_log_loss(
    deployment, champion, analyst_api, staff_api
):
    from apps.monitoring.models import PredictionLog

    answer = analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()
    prediction_logs_flush()
    # An answer logged before probabilities were kept.
    PredictionLog.objects.filter(request_id=answer["request_id"]).update(probabilities=None)
    staff_api.post(
        FEEDBACK, {"request_id": answer["request_id"], "ground_truth": answer["predictions"][0]}, format="json"
    )
    feedback = Feedback.objects.get()
    assert feedback.n_correct == 1 and feedback.log_loss_sum is None and feedback.calibration is None
    window = version_windows(deployment=deployment, since=timezone.now() - timedelta(hours=1))[champion.pk]
    assert window.accuracy == 1.0 and window.log_loss is None and window.calibration is None
    version = next(v for v in analyst_api.get(SUMMARY).json()["versions"] if v["model_version_id"] == champion.pk)
    assert version["log_loss"] is None and version["calibration"] is None
