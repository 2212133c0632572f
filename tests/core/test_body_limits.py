"""A body over its endpoint's limit is a 413 before it is read: the web process does not grow,
whether the client declares the size (Content-Length) or streams it chunked, authenticated or not."""

import http.client
import os
import socket

import pytest

from tests.deployments.conftest import WebProcess, free_port

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def web(settings):
    server = WebProcess(free_port()).start()
    yield server
    server.stop()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def server_pids(web) -> list[int]:
    """The server and the worker processes it forked (each worker leaves the parent's process group,
    so they are found as its children)."""
    workers = [int(p) for p in os.popen(f"pgrep -P {web.proc.pid}").read().split()]
    assert workers, "no worker process found: the memory check would measure only the parent"
    return [web.proc.pid, *workers]


def total_rss(web) -> float:
    return sum(rss_mb(pid) for pid in server_pids(web))


def send_declared(port: int, path: str, declared: int, send_bytes: int) -> tuple[int, dict]:
    """Declares `declared` bytes, sends up to `send_bytes` of them as long as the server reads."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
    )
    chunk = b"0" * MB
    sent = 0
    sock.settimeout(2)
    try:
        while sent < send_bytes:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
        pass  # the server answered and stopped reading: what we want
    sock.settimeout(30)
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    sock.close()
    return response.status, __import__("json").loads(body)


def send_chunked(port: int, path: str, total: int, headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def chunks():
        block = b"1" * MB
        for _ in range(total // MB):
            yield block

    try:
        conn.request(
            "POST",
            path,
            body=chunks(),
            headers={"Content-Type": "application/json", **(headers or {})},
            encode_chunked=True,
        )
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = conn.getresponse()
    return response.status, __import__("json").loads(response.read())


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/v1/experiments/", "/api/v1/deployments/x/predict", "/v2/models/x/infer"]
)
def test_a_declared_oversized_body_is_refused_before_it_is_read(web, path):
    before = total_rss(web)
    status, body = send_declared(web.port, path, declared=1024 * MB, send_bytes=200 * MB)
    assert status == 413
    message = body.get("detail") or body.get("error")
    assert "1,073,741,824 bytes" in message and "limit" in message
    assert total_rss(web) - before < 50


def test_a_chunked_body_is_counted_as_it_streams_and_cut_off_at_the_limit(web):
    before = total_rss(web)
    assert send_chunked(web.port, "/api/v1/experiments/", total=300 * MB)[0] == 413
    assert total_rss(web) - before < 50


def test_a_chunked_prediction_with_a_token_gets_the_413_in_its_protocols_shape(web, analyst_user):
    from apps.core.services import api_token_create

    _, token = api_token_create(user=analyst_user, name="bodies")
    auth = {"Authorization": f"Bearer {token}"}
    status, body = send_chunked(web.port, "/api/v1/deployments/x/predict", total=30 * MB, headers=auth)
    assert status == 413 and body["error_code"] == "BAD_REQUEST", body
    assert "limit" in body["message"] and body["detail"] == body["message"]
    status, body = send_chunked(web.port, "/v2/models/x/infer", total=30 * MB, headers=auth)
    assert status == 413 and "limit" in body["error"]


def test_a_body_within_the_limit_still_reaches_the_api(web):
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    conn.request("POST", "/api/v1/experiments/", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 401  # read, parsed and refused for the missing token
