"""`make run`'s processes run under supervisord, generated from the Procfile: a process that dies is
started again and the others keep serving."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_portal.supervise import program_command, read_procfile, supervisord_config
from tests.conftest import ARTIFACTS, ROOT, worker_env
from tests.deployments.conftest import free_port

BIN = Path(sys.executable).parent


def make_run_processes() -> list[str]:
    """The Procfile entries `make run` starts (the Makefile's RUN_PROCESSES)."""
    match = re.search(r"^RUN_PROCESSES\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile names the processes `make run` starts in RUN_PROCESSES"
    return match[1].split()


def test_the_supervisor_config_runs_every_procfile_line_through_a_shell_that_execs_it(tmp_path):
    processes = read_procfile(ROOT / "Procfile")
    config = supervisord_config(processes=processes, names=list(processes), directory=ROOT, state_dir=tmp_path)

    for name in processes:
        assert f"[program:{name}]" in config
    worker = next(line for line in config.splitlines() if line.startswith("command=") and "-Q cpu" in line)
    # %h is celery's hostname; supervisord would expand a lone % itself.
    assert worker.startswith("command=/bin/sh -c 'exec env TRAINING_THREADS=${TRAINING_THREADS:-1} celery ")
    assert "-n cpu@%%h" in worker
    assert config.count("autorestart=true") == len(processes) == config.count("stopasgroup=true")


def test_a_compound_procfile_line_still_runs_and_a_misspelt_name_is_refused(tmp_path):
    assert program_command("cd sub && exec thing") == "/bin/sh -c 'cd sub && exec thing'"
    assert program_command("A=1 B=${B:-2} prog --x") == "/bin/sh -c 'exec env A=1 B=${B:-2} prog --x'"
    with pytest.raises(ValueError, match="not in the Procfile: wroker"):
        supervisord_config(processes={"worker": "celery"}, names=["wroker"], directory=ROOT, state_dir=tmp_path)


class Supervisor:
    """`python -m mlops_portal.supervise NAMES…` as `make run` starts it, on a private port and state
    folder, against the suite's test database and Redis database."""

    def __init__(self, names: list[str]):
        self.names = names
        # A short path: the control socket's name must fit in 108 bytes.
        self.state = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))
        self.port = free_port()
        self.log_path = ARTIFACTS / "supervisor.log"
        self.proc = None

    def start(self):
        env = worker_env() | {
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(self.port),
            "GRPC_PORT": str(free_port()),
            "WORKER_CONCURRENCY": "1",
            "HOUSEKEEPING_CONCURRENCY": "1",
        }
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlops_portal.supervise", "--dir", str(self.state), *self.names],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def ctl(self, *args) -> str:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.state / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()

    def pid(self, name: str) -> int:
        out = self.ctl("pid", name)
        return int(out) if out.isdigit() else 0

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=3) as response:
                return response.status
        except Exception:
            return 0

    def stop(self):
        pids = [self.pid(name) for name in self.names] if self.proc.poll() is None else []
        self.proc.send_signal(signal.SIGTERM)  # supervisord stops every program, as a group
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for pid in pids:  # never leave a program behind, whatever happened above
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        self.log.close()
        for name in self.names:  # each program's log, kept beside the others for a failed run
            if (self.state / f"{name}.log").exists():
                shutil.copy(self.state / f"{name}.log", ARTIFACTS / f"supervisor-{name}.log")
        shutil.rmtree(self.state, ignore_errors=True)


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def supervisor(transactional_db):
    sv = Supervisor(make_run_processes()).start()
    yield sv
    sv.stop()


def worker_answers(hostname: str) -> bool:
    from mlops_portal.celery import app

    return bool(app.control.ping(destination=[hostname], timeout=1.0))


@pytest.mark.worker
def test_a_sigkilled_worker_is_started_again_while_the_web_keeps_answering(supervisor):
    assert {"web", "worker", "housekeeping", "beat"} <= set(supervisor.names)
    worker_name = f"cpu@{socket.gethostname()}"
    wait_for(lambda: supervisor.healthz() == 200, timeout=120, what="the web process to answer /healthz")
    wait_for(lambda: worker_answers(worker_name), timeout=120, what=f"{worker_name} to answer a ping")
    wait_for(lambda: all(supervisor.pid(n) for n in supervisor.names), timeout=60, what="every program RUNNING")
    before = {name: supervisor.pid(name) for name in supervisor.names}

    answers, stop = [], threading.Event()

    def poll_web():
        while not stop.is_set():
            answers.append(supervisor.healthz())
            time.sleep(0.1)

    poller = threading.Thread(target=poll_web, daemon=True)
    poller.start()
    try:
        os.killpg(before["worker"], signal.SIGKILL)  # the worker and its pool, as a crash would
        new_pid = wait_for(
            lambda: (pid := supervisor.pid("worker")) and pid != before["worker"] and pid,
            timeout=60,
            what="supervisord to start the worker again",
        )
        wait_for(lambda: worker_answers(worker_name), timeout=120, what="the new worker to answer a ping")
        # supervisord calls the new worker RUNNING only once it has stayed up its startsecs.
        wait_for(
            lambda: "RUNNING" in supervisor.ctl("status", "worker"),
            timeout=30,
            what="supervisord to report the new worker RUNNING",
        )
        since_restart = len(answers)  # then a few more answers from the web, and enough in all to judge
        wait_for(
            lambda: len(answers) >= max(since_restart + 5, 21),
            timeout=10,
            what="five more web answers after the restart",
        )
    finally:
        stop.set()
        poller.join(10)

    assert supervisor.proc.poll() is None, "supervisord itself keeps running"
    assert new_pid != before["worker"]
    assert "RUNNING" in supervisor.ctl("status", "worker")
    after = {name: supervisor.pid(name) for name in supervisor.names if name != "worker"}
    assert after == {name: pid for name, pid in before.items() if name != "worker"}, "nothing else was restarted"
    assert len(answers) > 20 and set(answers) == {200}, f"/healthz answers while the worker was down: {answers}"
    log = supervisor.log_path.read_text()
    assert "exited: worker (terminated by SIGKILL; not expected)" in log
