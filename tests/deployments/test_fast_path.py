"""The ASGI fast path answers exactly as the DRF views do, batches concurrent requests, and keeps
the same checks (token, role, throttle) in the same order."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.test import Client

from apps.core.services import api_token_create
from apps.deployments.serving import predict as predict_module
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.deployments.services.model_deployment_service import deployment_create
from apps.monitoring.models import PredictionLog
from apps.monitoring.services.logbuffer import prediction_logs_flush

from .conftest import classification_frame, record, wait_until

# The fast path reads tokens and tables through Channels' database_sync_to_async, which closes
# "old" connections around each query: it needs committed data.
pytestmark = pytest.mark.django_db(transaction=True)

PREDICT = "/api/v1/deployments/price-direction/predict"
INFER = "/v2/models/price-direction/infer"


@pytest.fixture
def served(make_version, staff_user, analyst_user):
    version = make_version(seed=0)
    deployment_create(name="price-direction", model_version=version, user=staff_user)
    _, token = api_token_create(user=analyst_user, name="fast")
    return version, token


def call(app, path, body, token=None, extra_headers=()):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    # Without a Host in ALLOWED_HOSTS the fast path hands the request to Django, which refuses it.
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json"), *extra_headers]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))

    async def run():
        return await HttpCommunicator(app, "POST", path, body=raw, headers=headers).get_response(timeout=30)

    response = async_to_sync(run)()
    return response["status"], json.loads(response["body"]), dict(response["headers"])


def via_drf(path, body, token, raw=False):
    client = Client()
    data = body if raw else json.dumps(body)
    response = client.post(path, data=data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.json()


def comparable(body: dict) -> dict:
    """An answer without what differs on every request (ids)."""
    body = dict(body)
    body.pop("request_id", None)
    if "parameters" in body:
        body.pop("id", None)
        body["parameters"] = {k: v for k, v in body["parameters"].items() if k != "request_id"}
    return body


def test_the_fast_path_and_the_drf_views_give_the_same_answers_and_errors(served):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    rows = classification_frame(n=4, seed=3)[["f1", "f2", "f3"]].to_dict(orient="records")
    v2 = {
        "inputs": [
            {"name": c, "shape": [4], "datatype": "FP64", "data": [r[c] for r in rows]} for c in ("f1", "f2", "f3")
        ]
    }
    cases = [
        (PREDICT, {"dataframe_records": rows}),
        (PREDICT, {"instances": rows, "routing_key": "p-1"}),
        (INFER, v2),
        (INFER, {**v2, "outputs": [{"name": "rows"}]}),
        (PREDICT, {"dataframe_records": [{"f1": 1, "f2": 2}]}),
        (PREDICT, {"dataframe_records": [{"f1": "x", "f2": 2, "f3": 3}]}),
        (PREDICT, {"dataframe_records": []}),
        (PREDICT, b'{"dataframe_records": [{"f1": NaN, "f2": 1, "f3": 1}]}'),
        (PREDICT, b"{broken"),
        (INFER, {"inputs": [{"name": "f1", "shape": [2], "datatype": "FP64", "data": [1]}]}),
        ("/api/v1/deployments/nope/predict", {"instances": rows}),
    ]
    for path, body in cases:
        fast_status, fast_body, _ = call(app, path, body, token)
        drf_status, drf_body = via_drf(path, body, token, raw=isinstance(body, bytes))
        assert fast_status == drf_status, (path, body, fast_body, drf_body)
        assert comparable(fast_body) == comparable(drf_body), (path, body)
    status, _, headers = call(app, PREDICT, {"instances": [record()]}, token)
    assert status == 200 and headers[b"x-model-version"] == b"1"


def test_the_fast_path_refuses_bad_tokens_users_without_a_role_and_clients_over_their_rate(
    served, outsider_user, settings
):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    status, body, headers = call(app, PREDICT, {"instances": [record()]}, "mlp_nope_nope")
    assert (
        status == 401
        and body == {"error_code": "UNAUTHENTICATED", "message": "Invalid API token.", "detail": "Invalid API token."}
        and headers[b"www-authenticate"] == b"Bearer"
    )
    status, body, _ = call(app, INFER, {"inputs": []}, "garbage")
    assert status == 401 and set(body) == {"error"}
    _, outsider_token = api_token_create(user=outsider_user)
    assert call(app, PREDICT, {"instances": [record()]}, outsider_token)[0] == 403
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "2/minute"},
    }
    statuses = [call(app, PREDICT, {"instances": [record()]}, token)[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    status, body, headers = call(app, INFER, {"inputs": []}, token)
    assert status == 429 and "throttled" in body["error"] and int(headers[b"retry-after"]) >= 1


def test_concurrent_requests_share_one_model_call_and_each_gets_its_own_answer(served, monkeypatch):
    version, token = served
    app = PredictionFastPath(get_asgi_application())
    frame = classification_frame(n=24, seed=4)
    singles = [
        call(app, PREDICT, {"dataframe_records": [r]}, token)[1]["predictions"]
        for r in frame[["f1", "f2", "f3"]].to_dict(orient="records")
    ]
    calls = []
    original = predict_module._run_model

    def counting(served_version, frame_):
        calls.append(len(frame_))
        return original(served_version, frame_)

    monkeypatch.setattr(predict_module, "_run_model", counting)
    bodies = [
        {"dataframe_records": frame.iloc[i : i + 3][["f1", "f2", "f3"]].to_dict(orient="records")}
        for i in range(0, 24, 3)
    ]
    bodies.append({"dataframe_records": [{"f1": "bad", "f2": 0, "f3": 0}]})

    async def burst():
        headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        communicators = [
            HttpCommunicator(app, "POST", PREDICT, body=json.dumps(b).encode(), headers=headers) for b in bodies
        ]
        return await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))

    responses = async_to_sync(burst)()
    answers = [json.loads(r["body"]) for r in responses]
    assert [r["status"] for r in responses] == [200] * 8 + [400]
    assert calls == [24], "eight requests, one preprocessor and model call"
    assert [p for a in answers[:8] for p in a["predictions"]] == [p for s in singles for p in s]
    assert all(a["rows"] == ["0", "1", "2"] for a in answers[:8])
    assert answers[8]["field"] == "f1"
    assert len({a["request_id"] for a in answers[:8]}) == 8
    prediction_logs_flush()
    statuses = list(
        PredictionLog.objects.filter(request_id__in=[a["request_id"] for a in answers[:8]]).values_list(
            "status", flat=True
        )
    )
    assert statuses == ["ok"] * 8


def burst_of(app, token, bodies: list[bytes]) -> list[tuple[int, dict]]:
    async def burst():
        headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        communicators = [HttpCommunicator(app, "POST", PREDICT, body=b, headers=headers) for b in bodies]
        return await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))

    return [(r["status"], json.loads(r["body"])) for r in async_to_sync(burst)()]


def test_a_request_that_breaks_its_preparation_fails_alone_and_not_its_whole_batch(served, monkeypatch):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    original = predict_module.check_columns

    def breaks_on_13(columns, spec, **kwargs):
        if columns.get("f1") == [13]:
            raise RuntimeError("a bug this request triggers")
        return original(columns, spec, **kwargs)

    monkeypatch.setattr(predict_module, "check_columns", breaks_on_13)
    good = json.dumps({"dataframe_records": [record()]}).encode()
    bad = json.dumps({"dataframe_records": [record(f1=13)]}).encode()
    answers = burst_of(app, token, [good, bad, good])
    assert [status for status, _ in answers] == [200, 500, 200]


def test_integers_too_large_for_a_number_are_a_400_naming_the_field_on_both_paths_and_in_a_batch(served):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    good = json.dumps({"dataframe_records": [record()]}).encode()
    huge = b'{"dataframe_records": [{"f1": 1' + b"0" * 400 + b', "f2": 1, "f3": 1}]}'
    answers = burst_of(app, token, [good, huge, good])
    assert [status for status, _ in answers] == [200, 400, 200]
    assert answers[1][1]["field"] == "f1" and "too large" in answers[1][1]["detail"]
    assert via_drf(PREDICT, huge, token, raw=True) == (400, answers[1][1])
    past_python_limit = b'{"dataframe_records": [{"f1": ' + b"1" * 5000 + b', "f2": 1, "f3": 1}]}'
    fast_status, fast_body, _ = call(app, PREDICT, past_python_limit, token)
    assert (fast_status, fast_body["field"]) == (400, "body")
    assert via_drf(PREDICT, past_python_limit, token, raw=True) == (400, fast_body)
    assert call(app, PREDICT, b"[" * 100_000 + b"]" * 100_000, token)[0] == 400


def test_with_redis_down_the_fast_path_still_answers_and_the_log_reaches_postgresql(served, settings):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    assert call(app, PREDICT, {"instances": [record()]}, token)[0] == 200
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    status, body, _ = call(app, PREDICT, {"instances": [record()]}, token)
    assert status == 200, body
    assert wait_until(lambda: PredictionLog.objects.filter(request_id=body["request_id"]).exists())


def test_the_fast_path_refuses_a_bad_token_before_it_buffers_the_body(served, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    app = PredictionFastPath(get_asgi_application())
    oversized = {"instances": [record()] * 20}
    assert call(app, PREDICT, oversized, "mlp_nope_nope")[0] == 401
    assert call(app, PREDICT, oversized, served[1])[0] == 400
