"""ws/dashboard/: the same session as the page, refused without a role, and every change pushed as the
fresh item the summary API would show (through the real Redis channel layer)."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from mlops_portal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def communicator(cookie: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


async def receive_until(comm, wanted_type: str, timeout: float = 5.0) -> dict:
    """The next message of `wanted_type` (other pushes, e.g. run.progress, may come first)."""
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] == wanted_type:
            return message


def run_scenario(cookie, scenario):
    async def main():
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        assert connected
        try:
            return await scenario(comm)
        finally:
            await comm.disconnect()

    return async_to_sync(main)()


@pytest.mark.parametrize("who", ["outsider_user", None])
def test_a_user_without_a_role_or_session_is_closed_with_4403(request, who):
    cookie = session_cookie(request.getfixturevalue(who)) if who else None

    async def main():
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        closed = await comm.receive_output(timeout=3)
        await comm.wait()
        return connected, closed

    connected, closed = async_to_sync(main)()
    assert connected  # accepted only to tell the browser why, so it stops retrying
    assert closed == {"type": "websocket.close", "code": 4403}


def test_a_rollout_change_made_through_the_service_is_pushed_as_the_fresh_deployment(rolling_deployment, analyst_user):
    from apps.deployments.models import Rollout
    from apps.deployments.services.rollouts import rollout_transition

    async def scenario(comm):
        rollout = await sync_to_async(Rollout.objects.get)(deployment=rolling_deployment)
        await sync_to_async(rollout_transition)(
            rollout=rollout, action="promote", actor_label="tests", expected_stage=0, reason="looks good"
        )
        return await receive_until(comm, "deployment")

    message = run_scenario(session_cookie(analyst_user), scenario)
    deployment = message["deployment"]
    assert deployment["name"] == "price-direction"
    assert [v["weight"] for v in deployment["versions"]] == [50.0, 50.0]
    assert deployment["rollout"]["stage"] == 50
    assert deployment["events"][0]["kind"] == "stage_advanced" and deployment["events"][0]["reason"] == "looks good"


def test_a_deployment_that_no_longer_exists_is_pushed_as_removed(analyst_user):
    async def scenario(comm):
        await get_channel_layer().group_send("deployments", {"type": "deployment.changed", "deployment": "gone"})
        return await receive_until(comm, "deployment.removed")

    assert run_scenario(session_cookie(analyst_user), scenario) == {"type": "deployment.removed", "name": "gone"}


def test_a_run_status_change_is_pushed_with_the_run_and_its_progress(running_run, analyst_user):
    from apps.training.services.runs import run_status_transition

    async def scenario(comm):
        await sync_to_async(run_status_transition)(run_id=running_run.pk, to="succeeded", reason="done")
        return await receive_until(comm, "run")

    run = run_scenario(session_cookie(analyst_user), scenario)["run"]
    assert (run["id"], run["status"], run["percent"], run["epoch"]) == (running_run.pk, "succeeded", 100.0, 2)
    assert run["metrics"] == {"loss": 0.7, "val_loss": pytest.approx(0.8)}


def test_epoch_progress_from_the_worker_signal_reaches_the_dashboard(running_run, analyst_user):
    from apps.training.models import TrainingRun
    from apps.training.services.runs import epoch_record, run_records_write
    from apps.training.signals import run_epoch_completed

    def epoch_done():
        run = TrainingRun.objects.get(pk=running_run.pk)
        [(_, metrics)] = run_records_write(run=run, attempt=1, records=[epoch_record(5, 5, {"loss": 0.5}, 0.0)])
        run_epoch_completed.send(sender=TrainingRun, run=run, epoch=5, metrics=metrics)

    async def scenario(comm):
        await sync_to_async(epoch_done)()
        return await receive_until(comm, "run.progress")

    message = run_scenario(session_cookie(analyst_user), scenario)
    assert message == {
        "type": "run.progress",
        "run": running_run.pk,
        "epoch": 5,
        "total_epochs": 5,
        "percent": 100.0,
        "eta_seconds": 0.0,
        "metrics": {"loss": 0.5},
        "attempt": 1,
    }


def test_a_study_paused_through_its_service_is_pushed_as_the_fresh_study(running_study, analyst_user):
    from apps.tuning.services.studies import study_pause

    async def scenario(comm):
        await sync_to_async(study_pause)(study=running_study)
        while True:
            message = await receive_until(comm, "study")
            if message["study"]["status"] == "paused":
                return message["study"]

    shown = run_scenario(session_cookie(analyst_user), scenario)
    assert (shown["id"], shown["completed_trials"], shown["n_trials"], shown["best_value"]) == (
        running_study.pk,
        3,
        8,
        0.64,
    )
