"""The web process as the Procfile runs it (mlops_portal.serve): N uvicorn workers with a listening
socket each, connections spread over them, a dead worker replaced while the others keep serving."""

import collections
import http.client
import os
import signal
import subprocess
import time

import pytest

from tests.deployments.conftest import WebProcess, free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web():
    server = WebProcess(free_port(), workers=2).start()
    yield server
    server.stop()


def workers_of(web) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(web.proc.pid)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in out.split())


def wait_for_workers(web, n: int, started: int | None = None, timeout: float = 90) -> list[int]:
    """The n workers' pids once `started` (default n) start-ups are complete: a worker imports the
    portal before it joins the port, and one still importing does not answer yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = workers_of(web)
        ready = web.log_path.read_text().count("Application startup complete")
        if len(pids) == n and ready >= (started or n) and healthy(web):
            return pids
        time.sleep(0.2)
    raise AssertionError(f"expected {n} workers, have {workers_of(web)}")


def healthy(web) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_keep_alive_connections_are_spread_over_every_worker(web):
    pids = wait_for_workers(web, 2)
    connections = []
    for _ in range(64):
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        connections.append(conn)
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{web.port} )"], capture_output=True, text=True
    ).stdout
    held = collections.Counter(
        int(line.split("pid=")[1].split(",")[0]) for line in listing.splitlines() if "pid=" in line
    )
    for conn in connections:
        conn.close()
    assert sum(held.values()) == 64
    # The kernel hashes new connections over one socket per worker: each takes a real share.
    assert set(held) == set(pids) and min(held.values()) >= 8, held


def test_a_killed_worker_is_replaced_and_the_other_keeps_serving(web):
    first, second = wait_for_workers(web, 2)
    os.kill(first, signal.SIGKILL)
    # (Connections already queued on the dead worker's own socket die with it; new ones go elsewhere.)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{first}") and time.monotonic() < deadline:
        time.sleep(0.01)
    answered = [healthy(web) for _ in range(20)]
    assert all(answered)
    pids = wait_for_workers(web, 2, started=3)
    assert second in pids and first not in pids


def test_sigterm_stops_every_worker_gracefully(web):
    pids = wait_for_workers(web, 2)
    os.kill(web.proc.pid, signal.SIGTERM)
    assert web.proc.wait(30) == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the web process"
    log = web.log_path.read_text()
    assert log.count("Application shutdown complete") >= 2  # each ran its shutdown (the log writer's flush)
