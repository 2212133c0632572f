"""Alert tests serve real traffic into the rollups, so they reuse the deployment fixtures."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deployments.conftest import _fresh_serving_state, champion, deployment, make_version  # noqa: F401
from tests.training.conftest import inline_runs  # noqa: F401

PORTS = range(19000, 19100)  # this suite's share of local ports


class Receiver:
    """A webhook receiver on a local port: it answers each POST with the next status of `answers`
    (then 200) and keeps every body it was sent, with the status it answered."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.received: list[tuple[int, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    code = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append((code, body))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"boom" if code >= 400 else b"ok")

            def log_message(self, *args):
                pass

        for port in PORTS:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port in 19000-19099")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = []

    def make(answers=()):
        started.append(Receiver(answers))
        return started[-1]

    yield make
    for r in started:
        r.stop()


def free_port_closed() -> str:
    """A URL on a local port where nothing listens (a receiver that is down)."""
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return f"http://127.0.0.1:{port}/down"
    raise RuntimeError("no free port in 19000-19099")
