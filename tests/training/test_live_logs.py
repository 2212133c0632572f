"""WebSocket ws/training/runs/<id>/?after=N: auth, replay-then-stream, nothing missing after a reconnect."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from mlops_portal.asgi import application

from .conftest import start_inline

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user=None):
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def _connect(path, user_headers):
    communicator = WebsocketCommunicator(application, path, headers=user_headers)
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


def _try(path, headers):
    async def main():
        communicator, connected, code = await _connect(path, headers)
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(main)()


def test_anonymous_users_and_users_without_a_role_are_refused(price_experiment, outsider_user, analyst_user):
    run = start_inline(price_experiment)
    path = f"/ws/training/runs/{run.pk}/"
    assert _try(path, _headers()) == (False, 4403)
    assert _try(path, _headers(outsider_user)) == (False, 4403)
    assert _try(path, _headers(analyst_user))[0] is True
    assert _try("/ws/training/runs/999999/", _headers(analyst_user)) == (False, 4404)
    assert _try(f"{path}?after=abc", _headers(analyst_user)) == (False, 4400)


async def _collect(communicator, *, until, timeout=90.0):
    """Messages until `until(message)` is true."""
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if until(message):
            return messages


@pytest.mark.worker
def test_a_viewer_gets_live_lines_in_order_and_misses_none_after_reconnecting(
    celery_worker, price_experiment, analyst_user
):
    from apps.training.models import RunLogLine
    from apps.training.services.training_pipeline import _dispatch

    run = start_inline(
        price_experiment,
        framework="sklearn",
        model_type="gradient_boosting",
        params={"max_iter": 120, "stage_size": 10, "patience": 1000, "min_samples_leaf": 5},
    )
    headers = _headers(analyst_user)

    async def watch():
        first, connected, _ = await _connect(f"/ws/training/runs/{run.pk}/?after=0", headers)
        assert connected
        _dispatch(run.pk, run.queue, run.celery_task_id)
        # Leave after a few live lines, as a viewer whose network drops.
        before = await _collect(first, until=lambda m: m["type"] == "run.log" and m["seq"] >= 6)
        await first.disconnect()
        last_seen = max(m["seq"] for m in before if m["type"] == "run.log")

        second, connected, _ = await _connect(f"/ws/training/runs/{run.pk}/?after={last_seen}", headers)
        assert connected
        after = await _collect(second, until=lambda m: m["type"] == "run.status" and m["status"] == "succeeded")
        await second.disconnect()
        return before, after

    before, after = async_to_sync(watch)()

    first_seqs = [m["seq"] for m in before if m["type"] == "run.log"]
    second_seqs = [m["seq"] for m in after if m["type"] == "run.log"]
    stored = list(RunLogLine.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert first_seqs == sorted(set(first_seqs)), "in order, no duplicates"
    assert second_seqs == sorted(set(second_seqs)), "in order, no duplicates"
    assert second_seqs[0] == first_seqs[-1] + 1, "the reconnect resumes right after the last line seen"
    assert first_seqs + second_seqs == stored == list(range(1, len(stored) + 1))
    progress = [m for m in before + after if m["type"] == "run.progress"]
    assert progress and progress[-1]["total_epochs"] >= progress[-1]["epoch"] >= 1
    assert {"percent", "eta_seconds", "metrics"} <= set(progress[-1])
