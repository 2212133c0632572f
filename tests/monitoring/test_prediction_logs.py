"""Prediction logs leave the request path through an in-process buffer, and every one reaches
PostgreSQL: through its writer thread, a flush in the caller's transaction, a terminated connection,
a full buffer (counted drops) and Redis being away. The fault tests with real processes are in
test_log_durability.py."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.monitoring.models import PredictionLog
from apps.core.redis_client import get_redis
from apps.monitoring.services import logbuffer
from apps.monitoring.services.logbuffer import (
    COUNT_KEY,
    PENDING_KEY,
    WRITERS_KEY,
    counter_field,
    logs_store,
    prediction_log_writers,
    prediction_logs_flush,
    prediction_logs_pending,
)
from apps.monitoring.services.logwriter import APPLICATION_NAME, LogWriter
from tests.deployments.conftest import record, wait_until

PREDICT = "/api/v1/deployments/price-direction/predict"


def line(deployment_id, version_id, **changes) -> dict:
    return {
        **logbuffer.log_entry(
            request_id=str(uuid.uuid4()),
            deployment_id=deployment_id,
            version_id=version_id,
            shadow=False,
            status="ok",
            latency_ms=1.5,
            n_rows=1,
            inputs_hash="h",
            output=[1],
        ),
        **changes,
    }


def legacy_push(deployment, champion) -> str:
    """A line in the old Redis list, as a web process of the previous release left it."""
    entry = line(deployment.pk, champion.pk)
    get_redis().rpush(PENDING_KEY, json.dumps(entry))
    return entry["r"]


def logged_ids() -> set[str]:
    return {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)}


def test_a_prediction_is_logged_with_version_latency_inputs_hash_and_output(deployment, champion, analyst_api):
    body = {"dataframe_records": [record(), record(1, 1, 1)]}
    data = analyst_api.post(PREDICT, body, format="json").json()
    assert PredictionLog.objects.count() == 0, "nothing is written to PostgreSQL in the request"
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
    assert prediction_logs_pending() == 0


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_stores_answers_without_anyone_flushing(make_version, staff_user, analyst_user):
    from rest_framework.test import APIClient

    from apps.core.services import api_token_create
    from apps.deployments.services.model_deployment_service import deployment_create

    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    _, token = api_token_create(user=analyst_user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    dropped = logbuffer.process_writer().dropped  # this test process's writer counts since it started
    served = {api.post(PREDICT, {"instances": [record(i / 10)]}, format="json").json()["request_id"] for i in range(4)}
    answered = time.time()
    served.add(api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"])
    assert wait_until(lambda: logged_ids() == served, timeout=10)

    def progress():
        return prediction_log_writers().get(logbuffer._writer_id)

    assert wait_until(lambda: progress() and progress()["c"] >= answered and progress()["p"] == 0, timeout=5), (
        "the writer tells other processes it has stored what it was given"
    )
    assert progress()["d"] == dropped, "and that it dropped nothing"


@pytest.mark.django_db(transaction=True)
def test_terminating_the_writer_connection_under_load_loses_no_line_and_stores_none_twice(
    make_version, staff_user, analyst_user
):
    from rest_framework.test import APIClient

    from apps.core.services import api_token_create
    from apps.deployments.services.model_deployment_service import deployment_create

    deployment_create(name="price-direction", model_version=make_version(seed=0), user=staff_user)
    _, token = api_token_create(user=analyst_user)
    served, stop = [], threading.Event()

    def client_loop():
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        i = 0
        while not stop.is_set():
            response = api.post(PREDICT, {"instances": [record(i % 7 / 10)]}, format="json")
            assert response.status_code == 200
            served.append(response.json()["request_id"])
            i += 1
        connection.close()

    thread = threading.Thread(target=client_loop)
    thread.start()
    terminated = 0
    try:
        deadline = time.monotonic() + 20
        while terminated < 3 and time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND datname = current_database()",
                    [APPLICATION_NAME],
                )
                terminated += cursor.fetchone()[0]
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert terminated == 3, "the writer's connection was found (pg_stat_activity) and terminated three times"
    assert wait_until(lambda: PredictionLog.objects.count() >= len(served), timeout=15)
    assert PredictionLog.objects.count() == len(served) == len(set(served)) and logged_ids() == set(served)


def test_past_its_cap_the_buffer_drops_the_newest_lines_counts_them_and_keeps_the_rest(deployment, champion):
    reports = []
    writer = LogWriter(store=logs_store, report=lambda counters, progress: reports.append(counters), capacity=3)
    lines = [line(deployment.pk, champion.pk) for _ in range(5)]
    field = counter_field("price-direction", "1", "ok", False)
    try:
        writer.push(lines, [field] * 5)
        assert writer.dropped == 2 and writer.pending() == 3
        assert writer.flush(wait_s=5) == 3
    finally:
        writer.close(timeout=5)
    assert logged_ids() == {entry["r"] for entry in lines[:3]}
    assert sum(counters.get(field, [0])[0] for counters in reports) == 5, "a dropped line's answer is still counted"


def test_a_line_the_writer_cannot_see_yet_is_held_for_the_flush_of_the_transaction_that_can(deployment, champion):
    """The writer thread's connection cannot see this test's uncommitted deployment; the flush in
    the test's own transaction can, as the caller that created the deployment and predicted can."""
    writer = LogWriter(store=logs_store, report=lambda counters, progress: None, capacity=100)
    entry = line(deployment.pk, champion.pk)
    try:
        writer.push([entry], ["x"])
        assert wait_until(lambda: writer.held() == 1, timeout=5), "the writer tried and held the line"
        assert writer.pending() == 0 and writer.dropped == 0
        assert writer.flush(wait_s=5) == 1
    finally:
        writer.close(timeout=5)
    assert logged_ids() == {entry["r"]}


def test_a_flush_drops_the_lines_it_cannot_see_either_and_stores_the_rest(deployment, champion):
    writer = LogWriter(store=logs_store, report=lambda counters, progress: None, capacity=100)
    ghost, good = line(deployment.pk + 999, champion.pk), line(deployment.pk, champion.pk)
    try:
        writer.push([ghost, good], ["x", "x"])
        assert writer.flush(wait_s=5) == 1
    finally:
        writer.close(timeout=5)
    assert logged_ids() == {good["r"]} and writer.dropped == 1 and writer.held() == 0


@pytest.mark.django_db(transaction=True)
def test_the_writer_drops_a_line_of_a_deleted_deployment_after_the_grace(make_version, staff_user):
    from apps.deployments.services.model_deployment_service import deployment_create

    version = make_version(seed=0)
    deployment = deployment_create(name="price-direction", model_version=version, user=staff_user)
    writer = LogWriter(store=logs_store, report=lambda counters, progress: None, capacity=100, orphan_grace_s=0.2)
    ghost, good = line(deployment.pk + 999, version.pk), line(deployment.pk, version.pk)
    try:
        writer.push([ghost, good], ["x", "x"])
        assert wait_until(lambda: writer.dropped == 1 and writer.stored == 1, timeout=5)
        assert writer.held() == 0
    finally:
        writer.close(timeout=5)
    assert logged_ids() == {good["r"]}


def test_with_redis_unreachable_answers_are_still_logged_and_their_counts_arrive_once_it_is_back(
    deployment, champion, analyst_api, settings
):
    suite_redis = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    served = {
        analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"] for _ in range(3)
    }
    assert prediction_logs_flush() == 3
    assert logged_ids() == served
    settings.REDIS_URL = suite_redis
    prediction_logs_flush()
    assert int(get_redis().hget(COUNT_KEY, counter_field("price-direction", "1", "ok", False))) == 3


def test_a_flush_waits_for_another_live_process_writer_and_ignores_a_silent_one(deployment, champion):
    client = get_redis()
    now = time.time()
    client.hset(WRITERS_KEY, "other-host:1:live", json.dumps({"c": now - 5, "p": 4, "t": now}))
    client.hset(WRITERS_KEY, "other-host:2:killed", json.dumps({"c": now - 30, "p": 9, "t": now - 30}))
    assert prediction_logs_pending(wait_s=0.2) == 4, "the live writer has not caught up; the silent one is gone"
    started = time.monotonic()
    prediction_logs_flush(wait_s=0.3)
    assert time.monotonic() - started >= 0.3, "the flush waited for the writer that is behind"
    client.hset(WRITERS_KEY, "other-host:1:live", json.dumps({"c": time.time() + 1, "p": 0, "t": time.time()}))
    assert prediction_logs_pending(wait_s=0.2) == 0


@pytest.mark.django_db(transaction=True)
def test_under_concurrent_load_the_logged_count_equals_the_served_count(make_version, staff_user, analyst_user):
    """Eight clients in threads (their own connections) while flushes run beside the writer thread."""
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


def test_a_drainer_of_the_old_list_that_dies_after_inserting_loses_nothing_and_counts_nothing_twice(
    deployment, champion, monkeypatch
):
    ids = {legacy_push(deployment, champion) for _ in range(5)}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between insert and trim")

    monkeypatch.setattr(logbuffer, "_trim_if_still_held", crash)
    with pytest.raises(KeyboardInterrupt):
        prediction_logs_flush()
    monkeypatch.undo()
    assert prediction_logs_pending() == 5, "the batch is still in the list"
    assert prediction_logs_flush() == 5
    assert logged_ids() == ids
    assert prediction_logs_pending() == 0


def test_unreadable_lines_and_lines_of_deleted_deployments_in_the_old_list_are_dropped_without_blocking_the_rest(
    deployment, champion
):
    served = legacy_push(deployment, champion)
    client = get_redis()
    client.rpush(PENDING_KEY, b"{not json")
    client.rpush(PENDING_KEY, json.dumps(line(deployment.pk + 999, champion.pk)))
    assert prediction_logs_flush() == 3
    assert logged_ids() == {served}


def test_old_served_at_timestamps_survive_the_round_trip(deployment, champion):
    when = datetime.now(UTC) - timedelta(minutes=42)
    entry = logbuffer.log_entry(
        request_id="1c3e5a7b-9d0f-4a2b-8c4d-6e8f0a1b2c3d",
        deployment_id=deployment.pk,
        version_id=champion.pk,
        shadow=True,
        status="server_error",
        latency_ms=3.0,
        n_rows=0,
        inputs_hash="h",
        output=[],
        error="boom",
        served_at=when.timestamp(),
    )
    logbuffer.prediction_log_push(entries=[entry], labels=[("price-direction", "1")])
    prediction_logs_flush()
    log = PredictionLog.objects.get()
    assert abs((log.served_at - when).total_seconds()) < 0.001 and log.shadow and log.error == "boom"


def test_a_nul_in_a_field_name_does_not_stop_the_log_flusher(deployment, analyst_api):
    rejected = analyst_api.post(PREDICT, {"dataframe_records": [{**record(), "x\u0000": 1}]}, format="json")
    assert rejected.status_code == 400
    served = {
        analyst_api.post(PREDICT, {"instances": [record()]}, format="json").json()["request_id"] for _ in range(2)
    }
    assert prediction_logs_flush() == 3
    assert prediction_logs_pending() == 0
    assert served <= {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)}
    error = PredictionLog.objects.get(status="client_error").error
    assert "unexpected column" in error and "\x00" not in error


def test_a_line_postgresql_refuses_is_dropped_and_the_lines_behind_it_are_stored(deployment, champion):
    def line(request_id, **changes):
        entry = logbuffer.log_entry(
            request_id=request_id,
            deployment_id=deployment.pk,
            version_id=champion.pk,
            shadow=False,
            status="ok",
            latency_ms=1.0,
            n_rows=1,
            inputs_hash="h",
            output=[1],
        )
        return json.dumps({**entry, **changes})

    good = "3f0c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    # Written straight to the old Redis list, as an older web process (before log_entry cleaned lines) could have.
    get_redis().rpush(PENDING_KEY, line("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", e="bad\x00name"), line(good))
    assert prediction_logs_flush() == 2
    assert prediction_logs_pending() == 0
    assert [str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)] == [good]


def test_non_finite_numbers_and_nul_in_a_log_line_are_stored_as_null_and_a_replacement_character(deployment, champion):
    entry = logbuffer.log_entry(
        request_id="7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a",
        deployment_id=deployment.pk,
        version_id=champion.pk,
        shadow=False,
        status="ok",
        latency_ms=1.0,
        n_rows=3,
        inputs_hash="h",
        output=[float("nan"), float("inf"), 0.5],
        features={"f\x001": [1.0]},
    )
    logbuffer.prediction_log_push(entries=[entry], labels=[("price-direction", "1")])
    assert prediction_logs_flush() == 1
    log = PredictionLog.objects.get()
    assert log.output == [None, None, 0.5] and log.features == {"f\ufffd1": [1.0]}


def test_a_drainer_of_the_old_list_whose_lock_expired_during_its_insert_leaves_the_batch_for_the_new_holder(
    deployment, champion, monkeypatch
):
    ids = {legacy_push(deployment, champion) for _ in range(3)}
    inserted = logbuffer._insert_or_drop

    def slow_insert(entries):
        get_redis().delete(logbuffer.FLUSH_LOCK_KEY)  # the lock's timeout passed meanwhile
        return inserted(entries)

    monkeypatch.setattr(logbuffer, "_insert_or_drop", slow_insert)
    assert prediction_logs_flush() == 0
    assert prediction_logs_pending() == 3, "not trimmed by a flusher that no longer holds the lock"
    monkeypatch.undo()
    assert prediction_logs_flush() == 3 and prediction_logs_pending() == 0
    assert {str(r) for r in PredictionLog.objects.values_list("request_id", flat=True)} == ids
