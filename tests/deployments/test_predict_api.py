"""The prediction API: MLflow scoring formats, the Open Inference Protocol V2, input checks, auth."""

import math
import uuid

import numpy as np
import pandas as pd

from apps.deployments.serving.predict import predictor
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush
from apps.registry.loading import load_model_version

from .conftest import history_frame, record

PREDICT = "/api/v1/deployments/price-direction/predict"
INFER = "/v2/models/price-direction/infer"
ROWS = [record(0.5, -0.2, 0.1), record(-1.0, 0.3, 2.0), record(0.05, 0.02, -0.3)]


def v2_body(rows, **extra):
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[c] for r in rows]}
            for c in ("f1", "f2", "f3")
        ],
        **extra,
    }


def test_every_format_and_both_protocols_answer_the_in_memory_prediction_for_the_same_rows(
    deployment, champion, analyst_api
):
    expected, _ = load_model_version(champion).predict_raw(pd.DataFrame(ROWS))
    bodies = {
        "dataframe_records": {"dataframe_records": ROWS},
        "dataframe_split": {
            "dataframe_split": {"columns": ["f1", "f2", "f3"], "data": [[r["f1"], r["f2"], r["f3"]] for r in ROWS]}
        },
        "instances": {"instances": ROWS},
        "inputs": {"inputs": {c: [r[c] for r in ROWS] for c in ("f1", "f2", "f3")}},
    }
    for name, body in bodies.items():
        response = analyst_api.post(PREDICT, body, format="json")
        assert response.status_code == 200, (name, response.content)
        data = response.json()
        assert data["predictions"] == expected, name
        assert data["model_version"] == str(champion.version)
        uuid.UUID(data["request_id"])
        assert response["X-Request-Id"] == data["request_id"]
    response = analyst_api.post(INFER, v2_body(ROWS, id="client-7"), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["id"] == "client-7"
    assert data["model_name"] == "price-direction" and data["model_version"] == str(champion.version)
    output = next(o for o in data["outputs"] if o["name"] == "predictions")
    assert output == {"name": "predictions", "shape": [3], "datatype": "INT64", "data": expected}
    uuid.UUID(data["parameters"]["request_id"])


def test_every_bad_input_gets_a_400_that_names_the_field_and_never_a_500(deployment, analyst_api, settings):
    settings.DEPLOYMENTS_MAX_BATCH_ROWS = 50
    too_many = {"dataframe_records": [record()] * 51}
    cases = [
        ("malformed JSON", b'{"dataframe_records": [', "body"),
        ("not an object", b'"rows"', "body"),
        ("no format", b'{"routing_key": "x"}', "body"),
        ("two formats", b'{"instances": [], "inputs": []}', "body"),
        ("empty batch", b'{"dataframe_records": []}', "dataframe_records"),
        ("oversized batch", None, "rows"),
        ("missing feature", b'{"dataframe_records": [{"f1": 1, "f2": 2}]}', "f3"),
        ("extra feature", b'{"dataframe_records": [{"f1": 1, "f2": 2, "f3": 3, "f9": 4}]}', "f9"),
        ("wrong type", b'{"dataframe_records": [{"f1": "high", "f2": 2, "f3": 3}]}', "f1"),
        ("NaN", b'{"dataframe_records": [{"f1": NaN, "f2": 2, "f3": 3}]}', "f1"),
        ("infinity", b'{"dataframe_records": [{"f1": 1, "f2": Infinity, "f3": 3}]}', "f2"),
        ("null", b'{"dataframe_records": [{"f1": 1, "f2": 2, "f3": null}]}', "f3"),
        ("bad routing key", b'{"routing_key": [1], "dataframe_records": [{"f1": 1, "f2": 2, "f3": 3}]}', "routing_key"),
        (
            "ragged split",
            b'{"dataframe_split": {"columns": ["f1", "f2", "f3"], "data": [[1, 2]]}}',
            "dataframe_split.data[0]",
        ),
    ]
    for name, raw, field in cases:
        if raw is None:
            response = analyst_api.post(PREDICT, too_many, format="json")
        else:
            response = analyst_api.generic("POST", PREDICT, raw, content_type="application/json")
        assert response.status_code == 400, (name, response.status_code, response.content)
        body = response.json()
        assert body["field"] == field, (name, body)
        assert field in body["detail"], (name, body)
    v2_cases = [
        ("v2 missing column", {"inputs": [{"name": "f1", "shape": [1], "datatype": "FP64", "data": [1]}]}, "f2"),
        ("v2 NaN", v2_body([record(float("nan"))]), "nan"),
        (
            "v2 wrong shape",
            {"inputs": [{"name": "f1", "shape": [3], "datatype": "FP64", "data": [1]}]},
            "needs 3 values",
        ),
    ]
    for name, body, words in v2_cases:
        response = analyst_api.generic("POST", INFER, _json_with_nan(body), content_type="application/json")
        assert response.status_code == 400, (name, response.content)
        assert set(response.json()) == {"error"} and words in response.json()["error"], (name, response.json())
    prediction_logs_flush()
    assert not PredictionLog.objects.filter(status="server_error").exists()


def _json_with_nan(body) -> bytes:
    import json

    return json.dumps(body).encode()  # json.dumps writes NaN as the NaN literal, as some clients do


def test_a_model_with_history_shows_how_many_rows_it_needs_and_refuses_fewer(
    make_version, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version("history", model_name="ticker-direction")
    needed = version.signature["history_rows"]
    assert needed > 1
    with django_capture_on_commit_callbacks(execute=True):
        deployment_create(name="ticker-direction", model_version=version, user=staff_user)
    rest = analyst_api.get("/api/v1/deployments/ticker-direction").json()
    assert rest["signature"]["history_rows"] == needed
    assert rest["signature"]["entity_column"] == "ticker" and rest["signature"]["time_column"] == "date"
    v2 = analyst_api.get("/v2/models/ticker-direction").json()
    assert v2["parameters"]["history_rows"] == needed
    assert {i["name"] for i in v2["inputs"]} == {"date", "ticker", "x"}

    frame = history_frame(seed=0)
    latest = frame.groupby("ticker").tail(needed)[["date", "ticker", "x"]]
    rows = latest.to_dict(orient="records")
    response = analyst_api.post(
        "/api/v1/deployments/ticker-direction/predict", {"dataframe_records": rows}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["rows"] == ["AAA", "BBB"]
    expected, _ = load_model_version(version).predict_raw(latest.reset_index(drop=True))
    assert response.json()["predictions"] == expected

    short = frame.groupby("ticker").tail(needed - 1)[["date", "ticker", "x"]].to_dict(orient="records")
    response = analyst_api.post(
        "/api/v1/deployments/ticker-direction/predict", {"dataframe_records": short}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["needed_rows"] == needed
    assert f"needs the last {needed} rows of history" in body["detail"]
    response = analyst_api.post(
        "/v2/models/ticker-direction/infer",
        {
            "inputs": [
                {"name": "date", "shape": [2], "datatype": "BYTES", "data": [r["date"] for r in short[:2]]},
                {"name": "ticker", "shape": [2], "datatype": "BYTES", "data": [r["ticker"] for r in short[:2]]},
                {"name": "x", "shape": [2], "datatype": "FP64", "data": [r["x"] for r in short[:2]]},
            ]
        },
        format="json",
    )
    assert response.status_code == 400 and f"last {needed} rows" in response.json()["error"]


def test_predictions_need_a_token_of_a_user_with_a_portal_role(deployment, anon_api, outsider_api, staff_api):
    body = {"dataframe_records": [record()]}
    assert anon_api.post(PREDICT, body, format="json").status_code == 401
    assert outsider_api.post(PREDICT, body, format="json").status_code == 403
    assert staff_api.post(PREDICT, body, format="json").status_code == 200
    response = anon_api.post(INFER, v2_body([record()]), format="json")
    assert response.status_code == 401 and set(response.json()) == {"error"}
    assert anon_api.get("/v2/health/live").status_code == 200  # probes need no token


def test_a_client_over_its_rate_is_throttled_with_a_retry_after(deployment, analyst_api, staff_api, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "3/minute"},
    }
    body = {"dataframe_records": [record()]}
    statuses = [analyst_api.post(PREDICT, body, format="json").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = analyst_api.post(PREDICT, body, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) <= 60
    assert staff_api.post(PREDICT, body, format="json").status_code == 200, "the budget is per client"


def test_an_unknown_deployment_is_a_404_in_both_protocols(deployment, analyst_api):
    assert (
        analyst_api.post("/api/v1/deployments/nope/predict", {"instances": [record()]}, format="json").status_code
        == 404
    )
    response = analyst_api.post("/v2/models/nope/infer", v2_body([record()]), format="json")
    assert response.status_code == 404 and "nope" in response.json()["error"]
    assert analyst_api.get("/v2/models/nope").status_code == 404


def test_v2_health_metadata_and_readiness_have_the_protocol_shapes(deployment, champion, analyst_api):
    assert analyst_api.get("/v2/health/live").json() == {"live": True}
    assert analyst_api.get("/v2/health/ready").json() == {"ready": True}
    metadata = analyst_api.get("/v2/models/price-direction").json()
    assert metadata["name"] == "price-direction"
    assert metadata["versions"] == [str(champion.version)]
    assert metadata["inputs"] == [{"name": c, "datatype": "FP64", "shape": [-1]} for c in ("f1", "f2", "f3")]
    assert metadata["outputs"][0] == {"name": "predictions", "datatype": "INT64", "shape": [-1]}
    assert metadata["parameters"]["history_rows"] == 1
    assert analyst_api.get("/v2/models/price-direction/ready").json() == {"name": "price-direction", "ready": True}
    response = analyst_api.post(INFER, v2_body([record()], outputs=[{"name": "predictions"}]), format="json")
    assert [o["name"] for o in response.json()["outputs"]] == ["predictions"]
    response = analyst_api.post(INFER, v2_body([record()], outputs=[{"name": "confidence"}]), format="json")
    assert response.status_code == 400 and "confidence" in response.json()["error"]


def _split(deployment, two_versions, staff_user, champion_weight, challenger_weight, shadow=False, capture=None):
    from apps.deployments.services.model_deployment_service import deployment_set_traffic

    champion, challenger = two_versions
    with capture(execute=True):
        deployment_set_traffic(
            deployment=deployment,
            user=staff_user,
            allocations=[
                {"model_version": champion, "weight": champion_weight},
                {"model_version": challenger, "weight": challenger_weight, "shadow": shadow},
            ],
        )


def test_traffic_splits_within_statistical_tolerance_of_the_weights(
    deployment, two_versions, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    _split(deployment, two_versions, staff_user, 70, 30, capture=django_capture_on_commit_callbacks)
    n = 400
    versions = [
        analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["model_version"] for _ in range(n)
    ]
    to_challenger = versions.count(str(two_versions[1].version))
    assert abs(to_challenger - n * 0.3) < 4 * math.sqrt(n * 0.3 * 0.7)


def test_a_routing_key_sticks_to_one_version_from_the_header_or_the_body(
    deployment, two_versions, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    _split(deployment, two_versions, staff_user, 50, 50, capture=django_capture_on_commit_callbacks)
    seen = {}
    for i in range(12):
        key = f"portfolio-{i}"
        by_header = {
            analyst_api.post(PREDICT, {"instances": [record()]}, format="json", HTTP_X_ROUTING_KEY=key).json()[
                "model_version"
            ]
            for _ in range(5)
        }
        by_body = {
            analyst_api.post(PREDICT, {"instances": [record()], "routing_key": key}, format="json").json()[
                "model_version"
            ]
            for _ in range(5)
        }
        by_v2 = {
            analyst_api.post(INFER, v2_body([record()], parameters={"routing_key": key}), format="json").json()[
                "model_version"
            ]
            for _ in range(3)
        }
        assert len(by_header) == 1 and by_header == by_body == by_v2
        seen[key] = by_header.pop()
    assert len(set(seen.values())) == 2, "twelve keys at 50/50 should reach both versions"


def test_a_shadow_challenger_gets_a_copy_that_is_logged_but_never_returned(
    deployment, two_versions, staff_user, analyst_api, django_capture_on_commit_callbacks
):
    champion, challenger = two_versions
    _split(deployment, two_versions, staff_user, 100, 0, shadow=True, capture=django_capture_on_commit_callbacks)
    request_ids = []
    for _ in range(10):
        data = analyst_api.post(PREDICT, {"instances": ROWS}, format="json").json()
        assert data["model_version"] == str(champion.version)
        request_ids.append(data["request_id"])
    assert predictor.shadow_drain()
    prediction_logs_flush()
    shadow_logs = PredictionLog.objects.filter(model_version=challenger, shadow=True)
    assert sorted(str(r) for r in shadow_logs.values_list("request_id", flat=True)) == sorted(request_ids)
    assert all(len(log.output) == 3 for log in shadow_logs)
    assert PredictionLog.objects.filter(model_version=champion, shadow=False).count() == 10


def test_a_model_answering_nan_fails_as_a_server_error_and_never_sends_nan_in_json(
    deployment, champion, analyst_api, monkeypatch
):
    from apps.deployments.serving.state import serving_state

    analyst_api.post(PREDICT, {"instances": [record()]}, format="json")
    loaded = serving_state.table("price-direction").versions[champion.pk].loaded
    # A classifier is served from its class probabilities (labels are their argmax).
    monkeypatch.setattr(loaded.trained, "predict_proba", lambda X, groups=None: np.full((len(X), 2), np.nan))
    response = analyst_api.post(PREDICT, {"instances": [record()]}, format="json")
    assert response.status_code == 500 and "NonFinitePrediction" in response.json()["detail"]
    prediction_logs_flush()
    log = PredictionLog.objects.get(status="server_error")
    assert "the model answered nan" in log.error and log.output == []


def test_feedback_with_an_integer_past_pythons_digit_limit_is_a_400_naming_the_body(deployment, staff_api):
    body = b'{"request_id": "00000000-0000-0000-0000-000000000001", "ground_truth": ' + b"1" * 5000 + b"}"
    response = staff_api.post("/api/v1/deployments/price-direction/feedback", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "body"
