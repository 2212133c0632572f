"""Private brokers for fault tests: a redis-server or a RabbitMQ vhost of the test's own, so that
stopping one never touches the machine's shared services."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import redis as redis_lib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A non-persistent redis-server on a free port (as the machine's own: nothing kept on disk),
    so a restart loses everything it held."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
                "--pidfile",
                str(self.workdir / "redis.pid"),
            ],
            check=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis_lib.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis on {self.port} did not start")

    def stop(self) -> None:
        try:
            redis_lib.Redis(port=self.port, socket_connect_timeout=0.5).shutdown(nosave=True)
        except redis_lib.ConnectionError:
            pass  # shutdown closes the connection under us, or it is already down
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis_lib.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                time.sleep(0.05)
            except redis_lib.ConnectionError:
                return


class PrivateRabbitVhost:
    """A vhost of the test's own on the machine's RabbitMQ; 'restarting the broker' for it means
    closing every connection to that vhost (the node and other vhosts stay up)."""

    def __init__(self):
        self.name = f"pytest-{uuid.uuid4().hex[:8]}"
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    @staticmethod
    def available() -> bool:
        if not shutil.which("rabbitmqctl"):
            return False
        try:
            socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        except OSError:
            return False
        return subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True).returncode == 0

    def start(self) -> PrivateRabbitVhost:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.name], check=True, capture_output=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        return self

    def drop_connections(self) -> int:
        """Closes every client connection to this vhost, as a broker restart would."""
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_connections", "pid", "vhost"], capture_output=True, text=True, check=True
        ).stdout
        pids = [line.split("\t")[0] for line in listing.splitlines() if line.endswith(f"\t{self.name}")]
        for pid in pids:
            subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "pytest: broker restart"], capture_output=True
            )
        return len(pids)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], capture_output=True)
