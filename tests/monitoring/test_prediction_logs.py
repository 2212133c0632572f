"""Prediction logs leave the request path through Redis and all of them reach PostgreSQL."""
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.monitoring.models import PredictionLog
from apps.monitoring.redis_client import get_redis
from apps.monitoring.services import logbuffer
from apps.monitoring.services.logbuffer import PENDING_KEY, prediction_logs_flush, prediction_logs_pending
from tests.deployments.conftest import record

PREDICT = "/api/v1/deployments/price-direction/predict"


def test_a_prediction_is_logged_with_version_latency_inputs_hash_and_output(deployment, champion, analyst_api):
    body = {"dataframe_records": [record(), record(1, 1, 1)]}
    data = analyst_api.post(PREDICT, body, format="json").json()
    assert PredictionLog.objects.count() == 0, "nothing is written to PostgreSQL in the request"
    assert prediction_logs_pending() == 1
    assert prediction_logs_flush() == 1
    log = PredictionLog.objects.get()
    assert str(log.request_id) == data["request_id"]
    assert log.model_version == champion and log.deployment == deployment and log.status == "ok"
    assert log.output == data["predictions"] and log.n_rows == 2
    assert 0 < log.latency_ms < 5000 and len(log.inputs_hash) == 32
    assert set(log.features) == {"f1", "f2", "f3"}
    again = analyst_api.post(PREDICT, body, format="json").json()
    prediction_logs_flush()
    assert PredictionLog.objects.get(request_id=again["request_id"]).inputs_hash == log.inputs_hash


def test_a_flusher_that_dies_after_inserting_loses_nothing_and_counts_nothing_twice(deployment, analyst_api, monkeypatch):
    ids = {analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"] for _ in range(5)}
    client = get_redis()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between insert and trim")

    monkeypatch.setattr(logbuffer, "_trim_if_still_held", crash)
    with pytest.raises(KeyboardInterrupt):
        prediction_logs_flush()
    monkeypatch.undo()
    assert prediction_logs_pending() == 5, "the batch is still queued"
    assert prediction_logs_flush() == 5
    assert {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)} == ids
    assert prediction_logs_pending() == 0


def test_unreadable_lines_and_logs_of_deleted_deployments_are_dropped_without_blocking_the_rest(deployment, champion, analyst_api):
    served = analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"]
    client = get_redis()
    client.rpush(PENDING_KEY, b"{not json")
    ghost = logbuffer.log_entry(request_id="6f1d7c52-9a70-4d2e-9a39-4a1e5f0b7c11", deployment_id=deployment.pk + 999,
                                version_id=champion.pk, shadow=False, status="ok", latency_ms=1.0, n_rows=1,
                                inputs_hash="x", output=[1])
    client.rpush(PENDING_KEY, json.dumps(ghost))
    assert prediction_logs_flush() == 3
    assert [str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)] == [served]


def test_when_redis_cannot_take_the_log_it_is_written_directly(deployment, champion, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    entry = logbuffer.log_entry(request_id="0b7f9f7e-3c0a-4f51-8f5e-1d2a3b4c5d6e", deployment_id=deployment.pk,
                                version_id=champion.pk, shadow=False, status="ok", latency_ms=2.5, n_rows=1,
                                inputs_hash="h", output=[0], served_at=datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    logbuffer.prediction_log_push(entries=[entry], labels=[("price-direction", "1")])
    log = PredictionLog.objects.get()
    assert log.latency_ms == 2.5 and log.served_at == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_under_concurrent_load_the_logged_count_equals_the_served_count(make_version, staff_user, analyst_user):
    """Eight clients in threads (their own connections) while a flusher drains concurrently."""
    from rest_framework.test import APIClient

    from apps.core.services import api_token_create
    from apps.deployments.services.model_deployment_service import deployment_create

    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    _, token = api_token_create(user=analyst_user)
    served, lock, stop = [], threading.Lock(), threading.Event()

    def client_loop():
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        for i in range(40):
            response = api.post(PREDICT, {"instances": [record(i / 10)]}, format="json")
            assert response.status_code == 200
            with lock:
                served.append(response.json()["request_id"])
        connection.close()

    def flusher():
        while not stop.is_set():
            prediction_logs_flush(batch_size=7)
        connection.close()

    drain = threading.Thread(target=flusher)
    drain.start()
    clients = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(120)
    stop.set()
    drain.join(30)
    prediction_logs_flush()
    logged = [str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)]
    assert len(served) == 320
    assert len(logged) == len(served) and set(logged) == set(served)


def test_old_served_at_timestamps_survive_the_round_trip(deployment, champion):
    when = datetime.now(UTC) - timedelta(minutes=42)
    entry = logbuffer.log_entry(request_id="1c3e5a7b-9d0f-4a2b-8c4d-6e8f0a1b2c3d", deployment_id=deployment.pk,
                                version_id=champion.pk, shadow=True, status="server_error", latency_ms=3.0, n_rows=0,
                                inputs_hash="h", output=[], error="boom", served_at=when.timestamp())
    logbuffer.prediction_log_push(entries=[entry], labels=[("price-direction", "1")])
    prediction_logs_flush()
    log = PredictionLog.objects.get()
    assert abs((log.served_at - when).total_seconds()) < 0.001 and log.shadow and log.error == "boom"


def test_a_nul_in_a_field_name_does_not_stop_the_log_flusher(deployment, analyst_api):
    rejected = analyst_api.post(PREDICT, {"dataframe_records": [{**record(), "x\u0000": 1}]}, format="json")
    assert rejected.status_code == 400
    served = {analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"] for _ in range(2)}
    assert prediction_logs_flush() == 3
    assert prediction_logs_pending() == 0
    assert served <= {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)}
    error = PredictionLog.objects.get(status="client_error").error
    assert "unexpected column" in error and "\x00" not in error


def test_a_line_postgresql_refuses_is_dropped_and_the_lines_behind_it_are_stored(deployment, champion):
    def line(request_id, **changes):
        entry = logbuffer.log_entry(request_id=request_id, deployment_id=deployment.pk, version_id=champion.pk,
                                    shadow=False, status="ok", latency_ms=1.0, n_rows=1, inputs_hash="h", output=[1])
        return json.dumps({**entry, **changes})

    good = "3f0c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    # Written straight to Redis, as an older web process (before log_entry cleaned lines) could have.
    get_redis().rpush(PENDING_KEY, line("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", e="bad\x00name"), line(good))
    assert prediction_logs_flush() == 2
    assert prediction_logs_pending() == 0
    assert [str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)] == [good]


def test_non_finite_numbers_and_nul_in_a_log_line_are_stored_as_null_and_a_replacement_character(deployment, champion):
    entry = logbuffer.log_entry(request_id="7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a", deployment_id=deployment.pk,
                                version_id=champion.pk, shadow=False, status="ok", latency_ms=1.0, n_rows=3,
                                inputs_hash="h", output=[float("nan"), float("inf"), 0.5], features={"f\x001": [1.0]})
    logbuffer.prediction_log_push(entries=[entry], labels=[("price-direction", "1")])
    assert prediction_logs_flush() == 1
    log = PredictionLog.objects.get()
    assert log.output == [None, None, 0.5] and log.features == {"f\ufffd1": [1.0]}


def test_a_flusher_whose_lock_expired_during_its_insert_leaves_the_batch_for_the_new_lock_holder(deployment, analyst_api,
                                                                                                monkeypatch):
    ids = {analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"] for _ in range(3)}
    inserted = logbuffer._insert

    def slow_insert(entries):
        get_redis().delete(logbuffer.FLUSH_LOCK_KEY)  # the lock's timeout passed meanwhile
        return inserted(entries)

    monkeypatch.setattr(logbuffer, "_insert", slow_insert)
    assert prediction_logs_flush() == 0
    assert prediction_logs_pending() == 3, "not trimmed by a flusher that no longer holds the lock"
    monkeypatch.undo()
    assert prediction_logs_flush() == 3 and prediction_logs_pending() == 0
    assert {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)} == ids
