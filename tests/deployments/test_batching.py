"""Micro-batching for every model: history models batch across requests and entities with the same
answers as one request at a time, each request's failure stays its own, and each deployment's
`max_batch_size` / `max_batch_wait_ms` is honoured and validated."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application

from apps.core.services import api_token_create
from apps.deployments.models import Deployment
from apps.deployments.serving import predict as predict_module
from apps.deployments.serving.batchstats import batch_sizes, read_histogram
from apps.deployments.serving.fastpath import PredictionFastPath
from apps.deployments.serving.state import serving_state
from apps.deployments.services.batching import deployment_batching_set
from apps.deployments.services.model_deployment_service import deployment_create

from .conftest import history_frame, record
from .test_fast_path import call

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "ticker-direction"
PREDICT = f"/api/v1/deployments/{NAME}/predict"


def burst(app, token, bodies: list[dict], path=PREDICT) -> list[tuple[int, dict]]:
    async def run():
        headers = [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ]
        communicators = [
            HttpCommunicator(app, "POST", path, body=json.dumps(b).encode(), headers=headers) for b in bodies
        ]
        return await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))

    return [(r["status"], json.loads(r["body"])) for r in async_to_sync(run)()]


def count_model_calls(monkeypatch) -> list[int]:
    calls = []
    original = predict_module._run_model

    def counting(served_version, model_input):
        calls.append(len(model_input))
        return original(served_version, model_input)

    monkeypatch.setattr(predict_module, "_run_model", counting)
    return calls


@pytest.fixture
def history_served(make_version, staff_user, analyst_user):
    version = make_version("history", model_name=NAME)
    deployment = deployment_create(name=NAME, model_version=version, user=staff_user)
    _, token = api_token_create(user=analyst_user, name="batching")
    return deployment, version, token


def test_concurrent_history_requests_answer_as_sequential_ones_from_one_model_call_and_a_bad_one_fails_alone(
    history_served, monkeypatch
):
    deployment, version, token = history_served
    needed = version.signature["history_rows"]
    frame = history_frame(seed=0)
    columns = ["date", "ticker", "x"]

    def window(ticker, end, rows=needed):
        rows_of = frame[frame.ticker == ticker].iloc[end - rows : end][columns]
        return rows_of.to_dict(orient="records")

    # Same ticker in several requests (windows ending on different days), and requests with two tickers.
    bodies = [{"dataframe_records": window(t, end)} for t in ("AAA", "BBB") for end in (20, 40, 60, 75)]
    bodies += [{"dataframe_records": window("AAA", 30) + window("BBB", 50)} for _ in range(2)]
    app = PredictionFastPath(get_asgi_application())
    sequential = [call(app, PREDICT, body, token) for body in bodies]
    assert all(status == 200 for status, _, _ in sequential)

    short = {"dataframe_records": window("AAA", 70, rows=needed - 1)}
    # The whole burst in one batch: it goes as soon as it is full, the wait only bounds a slow machine.
    deployment_batching_set(deployment=deployment, max_batch_size=len(bodies) + 1, max_batch_wait_ms=1000)
    calls = count_model_calls(monkeypatch)
    batch_sizes.push_now()
    before = read_histogram()
    answers = burst(app, token, [*bodies[:5], short, *bodies[5:]])
    batch_sizes.push_now()
    after = read_histogram()

    assert [status for status, _ in answers] == [200] * 5 + [400] + [200] * 5
    assert "needs the last" in answers[5][1]["detail"] and answers[5][1]["field"] == "rows"
    good = answers[:5] + answers[6:]
    assert [a["predictions"] for _, a in good] == [body["predictions"] for _, body, _ in sequential]
    assert [a["rows"] for _, a in good] == [body["rows"] for _, body, _ in sequential]
    assert good[-1][1]["rows"] == ["AAA", "BBB"]
    # One estimator call for the ten good requests' twelve entities.
    assert calls == [12]
    # (buckets, sum, count): batches of more than one request are those above the `le=1` bucket.
    assert (after[2] - after[0][0][1]) - (before[2] - before[0][0][1]) >= 1


def test_a_batch_holds_at_most_the_deployments_max_batch_size(history_served, monkeypatch, make_version, staff_user):
    from apps.deployments.serving.predict import predictor

    version = make_version(seed=0, model_name="plain")
    plain = deployment_create(name="plain", model_version=version, user=staff_user)
    deployment_batching_set(deployment=plain, max_batch_size=2, max_batch_wait_ms=200)
    _, _, token = history_served
    app = PredictionFastPath(get_asgi_application())
    calls = count_model_calls(monkeypatch)
    answers = burst(
        app, token, [{"instances": [record(f1=i / 10)]} for i in range(5)], path="/api/v1/deployments/plain/predict"
    )
    assert [status for status, _ in answers] == [200] * 5
    assert sorted(calls) == [1, 2, 2]
    single = predictor.predict(
        deployment="plain", body={"instances": [record(f1=0.3)]}, protocol="mlflow", raw_body=b"{}"
    )
    assert answers[3][1]["predictions"] == single.predictions


def test_staff_change_the_batching_through_the_api_within_bounds_and_every_process_takes_it(
    history_served, staff_api, analyst_api
):
    deployment, _, _ = history_served
    path = f"/api/v1/deployments/{NAME}"
    assert staff_api.get(path).json()["max_batch_size"] == Deployment._meta.get_field("max_batch_size").get_default()
    for body, field in [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 5000}, "max_batch_size"),
        ({"max_batch_wait_ms": -1}, "max_batch_wait_ms"),
        ({"max_batch_wait_ms": "nan"}, "max_batch_wait_ms"),
        ({"max_batch_wait_ms": 1e6}, "max_batch_wait_ms"),
        ({}, "max_batch_size"),
    ]:
        response = staff_api.patch(path, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in json.dumps(response.json()), (body, response.json())
    assert analyst_api.patch(path, {"max_batch_size": 8}, format="json").status_code == 403
    generation = Deployment.objects.get(pk=deployment.pk).generation
    response = staff_api.patch(path, {"max_batch_size": 8, "max_batch_wait_ms": 2.5}, format="json")
    assert response.status_code == 200
    assert (response.json()["max_batch_size"], response.json()["max_batch_wait_ms"]) == (8, 2.5)
    assert response.json()["generation"] == generation + 1  # a new table in every web process
    table = serving_state.table(NAME)
    assert (table.max_batch_size, table.max_batch_wait_ms) == (8, 2.5)


def test_an_admin_style_plain_save_reaches_the_serving_table_at_the_database_check(history_served):
    deployment, _, _ = history_served
    serving_state.table(NAME)
    Deployment.objects.filter(pk=deployment.pk).update(max_batch_size=3, max_batch_wait_ms=1.0)
    serving_state._check_database()
    table = serving_state.tables()[NAME]
    assert (table.max_batch_size, table.max_batch_wait_ms) == (3, 1.0)


def test_a_recurrent_model_batched_answers_as_each_request_alone(staff_user, monkeypatch):
    """A window of feature rows per prediction (LSTM): each request's input is built alone and the
    stacked windows go through one model call."""
    from apps.deployments.serving.predict import predictor

    from .conftest import LAG_SPEC, train_version

    version = train_version(
        dataset_name="hist-lstm",
        frame=history_frame(seed=2),
        task="classification",
        target="y",
        spec=LAG_SPEC,
        model_name="lstm-direction",
        user=staff_user,
        framework="torch",
        model_type="lstm",
        params={"epochs": 1, "hidden_size": 4, "window": 3},
        time_column="date",
        entity_column="ticker",
    )
    deployment_create(name="lstm-direction", model_version=version, user=staff_user)
    frame = history_frame(seed=2)[["date", "ticker", "x"]]
    bodies = [
        {"dataframe_records": frame[frame.ticker == t].iloc[end - 12 : end].to_dict(orient="records")}
        for t in ("AAA", "BBB")
        for end in (30, 60)
    ]
    bodies.append({"dataframe_records": frame.iloc[:2].to_dict(orient="records")})  # too short: fails alone
    alone = [
        predictor.predict(deployment="lstm-direction", body=b, protocol="mlflow", raw_body=b"{}").predictions
        for b in bodies[:-1]
    ]
    table = serving_state.table("lstm-direction")
    calls = count_model_calls(monkeypatch)
    with serving_state.routing():
        items = [
            predictor.prepare(table=table, body=b, protocol="mlflow", raw_body=b"{}", routing_key=None, started=0.0)
            for b in bodies
        ]
        predictor.run_batch(items)
    assert [item.outcome[0] for item in items[:-1]] == alone
    assert calls == [4]  # the four good requests' windows in one call
    assert isinstance(items[-1].outcome, predict_module.PredictionInputError)
