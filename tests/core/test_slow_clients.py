"""Slow clients time out (mlops_portal/slowclients.py): a connection that sends nothing, headers that
trickle in, or a body that stalls cannot hold a web worker's connection; WebSockets and prompt clients
are not affected. Timeouts are shortened to 1 s for the test."""

import socket
import time

import pytest

from tests.deployments.conftest import WebProcess, free_port


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    mp = pytest.MonkeyPatch()
    mp.setenv("REQUEST_HEADER_TIMEOUT_S", "1")
    mp.setenv("REQUEST_BODY_TIMEOUT_S", "1")
    with django_db_blocker.unblock():
        server = WebProcess(free_port()).start()
    mp.undo()
    yield server
    server.stop()


def connect(web) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes, float]:
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        data = read_all(sock)
    except TimeoutError:
        return False, b"", time.monotonic() - started
    return True, data, time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(web):
    closed, data, waited = closed_within(connect(web), 5)
    assert closed and data == b"" and waited < 4


def test_headers_that_trickle_in_are_cut_off_at_the_header_timeout(web):
    sock = connect(web)
    started = time.monotonic()
    closed = False
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.1)  # a byte every 0.1 s: each one would have reset uvicorn's own keep-alive timer
    if not closed:
        closed, data, _ = closed_within(sock, 5)
        assert data == b""
    assert closed and time.monotonic() - started < 6


def test_a_stalled_body_gets_408_and_the_connection_is_closed(web):
    sock = connect(web)
    sock.sendall(
        b"POST /api/v1/experiments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name": '
    )
    closed, data, waited = closed_within(sock, 5)
    assert closed and data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"REQUEST_BODY_TIMEOUT_S" in data and waited < 4


def test_prompt_requests_on_a_kept_alive_connection_are_unaffected(web):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    sockets = []
    for _ in range(2):
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        sockets.append(conn.sock)
        time.sleep(1.2)  # idle between requests longer than the header timeout: uvicorn's keep-alive rules
    assert sockets[0] is sockets[1], "the connection was not kept alive"
    conn.close()


@pytest.mark.django_db(transaction=True)  # the web process reads the committed session
def test_a_websocket_stays_open_past_both_timeouts(web, analyst_user):
    import asyncio

    from django.test import Client
    from websockets.asyncio.client import connect as ws_connect

    browser = Client()
    browser.force_login(analyst_user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    async def scenario():
        async with ws_connect(
            f"ws://127.0.0.1:{web.port}/ws/deployments/",
            additional_headers={"Cookie": cookie},
            origin=f"http://127.0.0.1:{web.port}",
        ) as ws:
            await asyncio.sleep(2.5)
            await ws.ping()
            return ws.state.name

    assert asyncio.run(scenario()) == "OPEN"
