"""Ground truth by request id, and what the dashboard and Prometheus see: windows, series, drift."""

import math

import numpy as np
import pytest

from apps.deployments.serving.predict import predictor
from apps.monitoring.models import Feedback, PredictionLog
from apps.monitoring.selectors import binned_counts, psi, version_windows
from apps.monitoring.services.logbuffer import prediction_logs_flush
from tests.deployments.conftest import classification_frame, record, regression_frame

PREDICT = "/api/v1/deployments/price-direction/predict"
FEEDBACK = "/api/v1/deployments/price-direction/feedback"
SERIES = "/api/v1/monitoring/deployments/price-direction/series"


def predict_labelled(client, frame, columns=("f1", "f2", "f3")):
    response = client.post(
        PREDICT,
        {"dataframe_split": {"columns": list(columns), "data": frame[list(columns)].values.tolist()}},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_feedback_scores_each_answer_and_may_arrive_before_the_log_is_flushed(
    deployment, champion, analyst_api, staff_api
):
    frame = classification_frame(n=10, seed=5)
    data = predict_labelled(analyst_api, frame)
    response = staff_api.post(
        FEEDBACK, {"request_id": data["request_id"], "ground_truth": frame["label"].tolist()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"requests": 1, "answers_scored": 1}
    feedback = Feedback.objects.get()
    assert feedback.n == 10
    assert feedback.n_correct == sum(int(p == t) for p, t in zip(data["predictions"], frame["label"]))
    again = staff_api.post(
        FEEDBACK,
        {"feedback": [{"request_id": data["request_id"], "ground_truth": frame["label"].tolist()}]},
        format="json",
    )
    assert again.status_code == 200 and Feedback.objects.count() == 1, "sending the same again never double counts"
    other = staff_api.post(
        FEEDBACK, {"feedback": [{"request_id": data["request_id"], "ground_truth": [0] * 10}]}, format="json"
    )
    assert other.status_code == 409 and Feedback.objects.get().n_correct == feedback.n_correct, "the first truth stands"


def test_bad_feedback_is_refused_naming_the_item_and_nothing_is_stored(
    deployment, analyst_api, staff_api, outsider_api
):
    data = predict_labelled(analyst_api, classification_frame(n=2, seed=6))
    cases = [
        ({"feedback": []}, "feedback"),
        ({"feedback": [{"request_id": "not-a-uuid", "ground_truth": 1}]}, "feedback[0].request_id"),
        (
            {"feedback": [{"request_id": "8a0c8bd4-4b7a-4d53-9d7e-0e0f0a0b0c0d", "ground_truth": 1}]},
            "feedback[0].request_id",
        ),
        ({"feedback": [{"request_id": data["request_id"], "ground_truth": [1]}]}, "feedback[0].ground_truth"),
        ({"feedback": [{"request_id": data["request_id"]}]}, "feedback[0].ground_truth"),
        (
            {
                "feedback": [
                    {"request_id": data["request_id"], "ground_truth": [1, 0]},
                    {"request_id": data["request_id"], "ground_truth": [1, 0]},
                ]
            },
            "feedback[1].request_id",
        ),
        ({"feedback": [], "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = staff_api.post(FEEDBACK, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["field"] == field, (field, response.json())
    for label in (b'"up\\u0000"', b"NaN", b"Infinity"):  # jsonb stores neither
        body = b'{"request_id": "%s", "ground_truth": [1, %s]}' % (data["request_id"].encode(), label)
        response = staff_api.generic("POST", FEEDBACK, body, content_type="application/json")
        assert response.status_code == 400 and response.json()["field"] == "feedback[0].ground_truth", (
            label,
            response.content,
        )
    assert staff_api.generic("POST", FEEDBACK, b"{oops", content_type="application/json").status_code == 400
    assert (
        outsider_api.post(
            FEEDBACK, {"request_id": data["request_id"], "ground_truth": [1, 0]}, format="json"
        ).status_code
        == 403
    )
    assert staff_api.post("/api/v1/deployments/nope/feedback", {"feedback": []}, format="json").status_code == 404
    assert not Feedback.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other_truth", [[1, 1], [0, 0]], ids=["same", "different"])
def test_two_senders_of_a_requests_truth_at_once_leave_one_row_and_a_different_later_one_is_a_conflict(
    make_version, staff_user, analyst_api, monkeypatch, other_truth
):
    import threading

    from django.db import connection

    from apps.deployments.services.model_deployment_service import deployment_create
    from apps.monitoring.services import feedback as feedback_module

    deployment = deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    frame = classification_frame(n=2, seed=6)
    request_id = predict_labelled(analyst_api, frame)["request_id"]
    prediction_logs_flush()
    scored = feedback_module._score
    other_sender = []

    def score_while_another_sender_commits(log, truth, task):
        # The other sender stores the same request's truth between this one's read and its write.
        if not other_sender:

            def send():
                try:
                    other_sender.append(
                        feedback_module.feedback_record(
                            deployment=deployment, items=[{"request_id": request_id, "ground_truth": other_truth}]
                        )
                    )
                finally:
                    connection.close()

            other_sender.append(None)
            thread = threading.Thread(target=send)
            thread.start()
            thread.join(30)
        return scored(log, truth, task)

    monkeypatch.setattr(feedback_module, "_score", score_while_another_sender_commits)
    assert frame["label"].tolist() == [1, 1]
    items = [{"request_id": request_id, "ground_truth": frame["label"].tolist()}]
    if other_truth == [1, 1]:
        assert feedback_module.feedback_record(deployment=deployment, items=items).answers_scored == 1
    else:
        with pytest.raises(feedback_module.FeedbackConflict):
            feedback_module.feedback_record(deployment=deployment, items=items)
    assert other_sender[-1] is not None and other_sender[-1].answers_scored == 1
    assert list(Feedback.objects.values_list("ground_truth", flat=True)) == [other_truth]
    # The rollups count the truth once too: only the sender whose INSERT created the row adds it.
    from apps.monitoring.models import PredictionRollup
    from apps.monitoring.rollups import ALL_TIME

    assert [r.feedback_rows for r in PredictionRollup.objects.filter(span=60).exclude(minute=ALL_TIME)] == [2]


def test_analysts_may_not_send_ground_truth_since_it_moves_the_rollout_gates(deployment, analyst_api):
    data = predict_labelled(analyst_api, classification_frame(n=2, seed=6))
    response = analyst_api.post(FEEDBACK, {"request_id": data["request_id"], "ground_truth": [1, 0]}, format="json")
    assert response.status_code == 403 and "ML Staff" in response.json()["detail"]
    assert not Feedback.objects.exists()


def test_regression_feedback_gives_rmse_per_version(
    make_version, staff_user, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version("regression")
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_create(name="price-direction", model_version=version, user=staff_user)
    frame = regression_frame(n=20, seed=9)
    data = predict_labelled(analyst_api, frame, columns=("f1", "f2"))
    assert (
        staff_api.post(
            FEEDBACK, {"request_id": data["request_id"], "ground_truth": frame["y"].tolist()}, format="json"
        ).status_code
        == 200
    )
    expected = math.sqrt(np.mean((np.array(data["predictions"]) - frame["y"].to_numpy()) ** 2))
    window = version_windows(deployment=deployment, since=PredictionLog.objects.get().served_at)[version.pk]
    assert window.accuracy is None and window.rmse == pytest.approx(expected)
    bad = staff_api.post(FEEDBACK, {"request_id": data["request_id"], "ground_truth": ["up"] * 20}, format="json")
    assert bad.status_code == 400 and "finite number" in bad.json()["detail"]


def test_regression_ground_truth_too_large_to_square_is_a_400_naming_the_value_and_stores_nothing(
    make_version, staff_user, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version("regression")
    with django_capture_on_commit_callbacks(execute=True):
        deployment_create(name="price-direction", model_version=version, user=staff_user)
    request_id = predict_labelled(analyst_api, regression_frame(n=2, seed=9), columns=("f1", "f2"))["request_id"]
    for huge in (b"1e200", b"1e160", b"1e80", b"1" + b"0" * 400):
        body = b'{"request_id": "%s", "ground_truth": [0.5, %s]}' % (request_id.encode(), huge)
        response = staff_api.generic("POST", FEEDBACK, body, content_type="application/json")
        assert response.status_code == 400, (huge, response.content)
        assert response.json()["field"] == "feedback[0].ground_truth" and "value 1" in response.json()["detail"]
    assert not Feedback.objects.exists()


def test_the_series_has_buckets_per_version_with_counts_latency_percentiles_and_accuracy(
    deployment, two_versions, staff_user, analyst_api, staff_api, outsider_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_set_traffic

    champion, challenger = two_versions
    with django_capture_on_commit_callbacks(execute=True):
        deployment_set_traffic(
            deployment=deployment,
            user=staff_user,
            allocations=[{"model_version": champion, "weight": 50}, {"model_version": challenger, "weight": 50}],
        )
    frame = classification_frame(n=60, seed=8)
    feedback = []
    for i in range(30):
        chunk = frame.iloc[2 * i : 2 * i + 2]
        data = predict_labelled(analyst_api, chunk)
        feedback.append({"request_id": data["request_id"], "ground_truth": chunk["label"].tolist()})
    analyst_api.post(PREDICT, {"instances": [{"f1": "bad", "f2": 0, "f3": 0}]}, format="json")
    staff_api.post(FEEDBACK, {"feedback": feedback}, format="json")
    prediction_logs_flush()

    response = analyst_api.get(SERIES, {"window": "15m"})
    assert response.status_code == 200
    series = response.json()
    assert series["bucket_seconds"] == 60 and len(series["versions"]) == 2
    assert [v["role"] for v in series["versions"]] == ["champion", "challenger"]
    total = sum(p["count"] for v in series["versions"] for p in v["points"])
    assert total == 31
    assert sum(p["client_errors"] for v in series["versions"] for p in v["points"]) == 1
    for version in series["versions"]:
        assert len(version["points"]) == 15
        busy = [p for p in version["points"] if p["count"]]
        assert busy and all(p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"] for p in busy if p["p50_ms"] is not None)
        labelled = [p for p in version["points"] if p["feedback"]]
        assert labelled and all(0 <= p["accuracy"] <= 1 for p in labelled)
    assert analyst_api.get(SERIES, {"window": "3y"}).status_code == 400
    assert outsider_api.get(SERIES).status_code == 403
    assert analyst_api.get("/api/v1/monitoring/deployments/nope/series").status_code == 404
    summary = analyst_api.get("/api/v1/monitoring/deployments/price-direction/summary", {"window": "1h"}).json()
    assert sum(v["requests"] for v in summary["versions"]) == 31
    assert all(v["feedback_rows"] > 0 for v in summary["versions"])


def test_psi_is_zero_for_the_training_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    train = rng.normal(size=5000)
    counts, edges = np.histogram(train, bins=20)
    same = binned_counts(rng.normal(size=2000), edges)
    shifted = binned_counts(rng.normal(loc=1.0, size=2000), edges)
    assert psi(counts, same) < 0.05
    assert psi(counts, shifted) > 0.25
    assert binned_counts([-100, 100], edges).tolist() == [1] + [0] * 18 + [1], "outliers land in the end bins"


def test_drift_of_served_inputs_is_measured_against_the_training_profile(deployment, champion, analyst_api):
    from django.utils import timezone

    from apps.monitoring.selectors import feature_drift

    start = timezone.now()
    rng = np.random.default_rng(1)
    for _ in range(12):
        rows = [record(float(a), float(b), float(c)) for a, b, c in rng.normal(size=(5, 3))]
        rows = [{**r, "f3": r["f3"] + 3.0} for r in rows]  # f3 moved three standard deviations
        analyst_api.post(PREDICT, {"dataframe_records": rows}, format="json")
    prediction_logs_flush()
    drift = feature_drift(deployment=deployment, model_version=champion, since=start)
    assert drift["f1"]["served_values"] == 60
    assert drift["f1"]["psi"] < 0.5 < drift["f3"]["psi"]


def test_metrics_are_exposed_for_prometheus_to_tokens_of_portal_users_and_allowed_addresses(
    deployment, analyst_api, anon_api, outsider_api, settings
):
    for _ in range(3):
        analyst_api.post(PREDICT, {"instances": [record()]}, format="json")
    analyst_api.post(PREDICT, {"instances": [{"f1": 1}]}, format="json")
    assert predictor.shadow_drain()
    prediction_logs_flush()
    response = analyst_api.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'mlops_predictions_total{deployment="price-direction",shadow="false",status="ok",version="1"} 3.0' in text
    assert (
        'mlops_predictions_total{deployment="price-direction",shadow="false",status="client_error",version="1"} 1.0'
        in text
    )
    assert (
        'mlops_deployment_traffic_ratio{deployment="price-direction",role="champion",shadow="false",version="1"} 1.0'
        in text
    )
    # Latency is a histogram in seconds (mergeable across hosts): cumulative buckets, +Inf = count.
    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name: family for family in text_string_to_metric_families(text)}
    latency = families["mlops_prediction_latency_seconds"]
    assert latency.type == "histogram"
    buckets = [(float(s.labels["le"]), s.value) for s in latency.samples if s.name.endswith("_bucket")]
    assert [count for _, count in buckets] == sorted(count for _, count in buckets), "cumulative"
    assert buckets[-1] == (float("inf"), 3.0)
    assert next(s.value for s in latency.samples if s.name.endswith("_count")) == 3.0
    assert 0 < next(s.value for s in latency.samples if s.name.endswith("_sum")) < 3.0, "seconds, not milliseconds"
    for family in families.values():
        assert family.name.startswith("mlops_") and not family.name.endswith(("_ms", "_percent")), family.name
        assert all("request_id" not in sample.labels for sample in family.samples)
    assert (
        families["mlops_predictions"].type == "counter" and families["mlops_prediction_log_dropped"].type == "counter"
    )
    assert anon_api.get("/metrics").status_code == 401
    assert outsider_api.get("/metrics").status_code == 401
    settings.METRICS_ALLOWED_IPS = ["127.0.0.0/8"]
    assert anon_api.get("/metrics").status_code == 200


def test_a_prediction_client_predicts_and_sends_ground_truth_but_reads_nothing(
    deployment, client_api, analyst_api, client
):
    frame = classification_frame(n=4, seed=8)
    data = predict_labelled(client_api, frame)
    response = client_api.post(
        FEEDBACK, {"request_id": data["request_id"], "ground_truth": frame["label"].tolist()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Feedback.objects.get().n == 4
    refused = analyst_api.post(
        FEEDBACK, {"request_id": data["request_id"], "ground_truth": frame["label"].tolist()}, format="json"
    )
    assert refused.status_code == 403 and "Prediction Clients" in refused.json()["detail"]
    for read in ("/api/v1/deployments/", "/api/v1/runs/", "/api/v1/me"):
        assert client_api.get(read).status_code == 403, read
    client.login(username="pricing-service", password="pricing-service-pass-123")
    assert client.get("/").status_code == 403, "no dashboard for a service account"
    assert client.get("/admin/").status_code == 302, "and no admin"
