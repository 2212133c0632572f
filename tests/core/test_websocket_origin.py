"""A WebSocket opens with the user's session only from the portal's own origin (scheme, host and
port) or a CSRF-trusted origin; another port or scheme on the same host is refused at the handshake."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from mlops_portal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _connects(user, *, origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> bool:
    client = Client()
    client.force_login(user)
    headers = [(b"host", host.encode()), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))

    async def main():
        comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
        comm.scope["scheme"] = scheme
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    return async_to_sync(main)()


def test_the_portals_own_origin_opens_a_socket(analyst_user):
    assert _connects(analyst_user, origin="http://127.0.0.1:8000")


def test_a_tls_page_on_the_default_port_opens_a_wss_socket(analyst_user):
    assert _connects(analyst_user, origin="https://127.0.0.1", host="127.0.0.1", scheme="wss")


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9000",  # another service on the same host
        "https://127.0.0.1:8000",  # same host and port, other scheme
        "http://evil.example:8000",  # another host
        "null",  # a sandboxed iframe or a file:// page
        None,  # no Origin at all
    ],
)
def test_another_origin_is_refused_at_the_handshake(analyst_user, origin):
    assert not _connects(analyst_user, origin=origin)


def test_a_host_outside_allowed_hosts_is_refused_even_when_origin_matches_it(analyst_user):
    assert not _connects(analyst_user, origin="http://evil.example:8000", host="evil.example:8000")


def test_an_origin_listed_in_csrf_trusted_origins_is_allowed(analyst_user, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.com"]
    assert _connects(analyst_user, origin="https://portal.example.com")
    assert not _connects(analyst_user, origin="https://portal.example.com:8443")
