"""Model calls run on inference threads, not on the event loop: while one is in progress the same
process keeps answering other requests, and requests that arrive meanwhile form the next batch."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application

from apps.deployments.serving import predict as predict_module
from apps.deployments.serving.batchstats import batch_sizes, read_histogram
from apps.deployments.serving.fastpath import PredictionFastPath

from .conftest import record
from .test_fast_path import PREDICT, served  # noqa: F401  (served is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = [(b"host", b"testserver"), (b"content-type", b"application/json")]


def _post(app, token, body):
    headers = [*HEADERS, (b"authorization", f"Bearer {token}".encode())]
    return HttpCommunicator(app, "POST", PREDICT, body=json.dumps(body).encode(), headers=headers)


def test_the_event_loop_answers_other_requests_while_a_model_call_runs(served, monkeypatch):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    assert async_to_sync(_post(app, token, {"instances": [record()]}).get_response)(timeout=30)["status"] == 200
    in_model, release = threading.Event(), threading.Event()
    original = predict_module._run_model

    def slow(served_version, frame):
        in_model.set()
        release.wait(10)
        return original(served_version, frame)

    monkeypatch.setattr(predict_module, "_run_model", slow)

    async def scenario():
        prediction = asyncio.ensure_future(_post(app, token, {"instances": [record()]}).get_response(timeout=30))
        while not in_model.is_set():
            await asyncio.sleep(0.01)
        # The model is busy on its thread; the loop must still serve a health probe.
        probe = await HttpCommunicator(app, "GET", "/healthz", headers=HEADERS).get_response(timeout=5)
        answered_during_model_call = not release.is_set()
        release.set()
        return probe, answered_during_model_call, await prediction

    probe, answered_during_model_call, prediction = async_to_sync(scenario)()
    assert probe["status"] == 200 and answered_during_model_call
    assert prediction["status"] == 200


def test_requests_arriving_during_a_model_call_are_served_together_next(served, monkeypatch):
    _, token = served
    app = PredictionFastPath(get_asgi_application())
    assert async_to_sync(_post(app, token, {"instances": [record()]}).get_response)(timeout=30)["status"] == 200
    batch_sizes.push_now()
    before = read_histogram()[2]
    in_model, release = threading.Event(), threading.Event()
    calls = []
    original = predict_module._run_model

    def gated(served_version, frame):
        calls.append(len(frame))
        if len(calls) == 1:
            in_model.set()
            release.wait(10)
        return original(served_version, frame)

    monkeypatch.setattr(predict_module, "_run_model", gated)

    async def scenario():
        first = asyncio.ensure_future(_post(app, token, {"instances": [record()]}).get_response(timeout=30))
        while not in_model.is_set():
            await asyncio.sleep(0.01)
        rest = [
            asyncio.ensure_future(_post(app, token, {"instances": [record(f1=i / 10)]}).get_response(timeout=30))
            for i in range(5)
        ]
        await asyncio.sleep(0.2)  # let all five arrive while the first batch holds the thread
        release.set()
        return [await first, *[await r for r in rest]]

    responses = async_to_sync(scenario)()
    assert [r["status"] for r in responses] == [200] * 6
    assert calls == [1, 5], "the five that waited went to the model as one batch"
    batch_sizes.push_now()
    assert read_histogram()[2] - before == 2  # two batches counted for /metrics
