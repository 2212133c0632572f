"""ws/deployments/: the dashboard's push channel, for logged-in users with a portal role."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.deployments.choices import RolloutAction
from apps.deployments.services.model_deployment_service import rollout_create, rollout_transition
from mlops_portal.asgi import application

# Channels closes "old" database connections around its own queries, the test's too: committed data.
pytestmark = pytest.mark.django_db(transaction=True)


def headers_for(user=None) -> list:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def test_users_without_a_session_or_a_role_are_refused(outsider_user):
    async def connect(headers):
        comm = WebsocketCommunicator(application, "/ws/deployments/", headers=headers)
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(connect)(headers_for(None)) == (False, 4403)
    assert async_to_sync(connect)(headers_for(outsider_user)) == (False, 4403)


def test_an_analyst_hears_of_every_rollout_transition(
    deployment, challenger, staff_user, analyst_user, django_capture_on_commit_callbacks
):
    headers = headers_for(analyst_user)

    async def scenario():
        comm = WebsocketCommunicator(application, "/ws/deployments/", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        messages = []
        try:
            await act(rollout_create, deployment=deployment, challenger=challenger, user=staff_user, start=True)
            messages.append(await comm.receive_json_from(timeout=5))
            messages.append(await comm.receive_json_from(timeout=5))
            await act(
                lambda: rollout_transition(
                    rollout=deployment.rollouts.get(), action=RolloutAction.PAUSE, user=staff_user
                )
            )
            messages.append(await comm.receive_json_from(timeout=5))
            assert await comm.receive_nothing(timeout=0.3)
        finally:
            await comm.disconnect()
        return messages

    from asgiref.sync import sync_to_async

    async def act(function, **kwargs):
        def run():
            with django_capture_on_commit_callbacks(execute=True):
                function(**kwargs)

        await sync_to_async(run)()

    messages = async_to_sync(scenario)()
    assert messages == [{"type": "deployment.changed", "deployment": "price-direction"}] * 3
