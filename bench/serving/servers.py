"""Starting the servers under test: the portal (its web process: N uvicorn workers, a socket each)
and `mlflow models serve` (N uvicorn workers), plus the database and MLflow venv they need."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_VENV = ROOT / "bench" / ".venv-mlflow"
# MLflow only in the benchmark's own venv, with the portal's versions of the libraries the
# models need, so both servers run the same estimator code.
MLFLOW_REQUIREMENTS = [
    "mlflow-skinny==3.17.2",
    "scikit-learn==1.9.1",
    "torch==2.13.0",
    "skops==0.16.0",
    "safetensors==0.8.0",
    "pandas==3.1.1",
    "numpy>=2,<3",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MLSERVER_VENV = ROOT / "bench" / ".venv-mlserver"
MLSERVER_REQUIREMENTS = [
    # uvloop 0.22+ refuses asyncio.get_event_loop() without a running loop, which MLServer 1.7.1's
    # parallel workers call at start-up.
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop==0.21.0",
    "scikit-learn==1.9.1",
    "skops==0.16.0",
    "numpy>=2,<3",
]


def ensure_venv(venv: Path, requirements: list[str], log) -> Path:
    """A venv of the benchmark's own for a server under comparison, never the project's venv."""
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(requirements):
        return python
    log(f"creating {venv} with {', '.join(requirements)} (first run only; several minutes)")
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    marker.write_text("\n".join(requirements))
    return python


def ensure_mlflow_venv(log) -> Path:
    return ensure_venv(MLFLOW_VENV, MLFLOW_REQUIREMENTS, log)


def ensure_mlserver_venv(log) -> Path:
    return ensure_venv(MLSERVER_VENV, MLSERVER_REQUIREMENTS, log)


def wait_http(url: str, *, timeout: float, headers: dict | None = None, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Servers:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.sockets: list[socket.socket] = []

    def portal(self, *, workers: int, env: dict, log_path: Path) -> int:
        """The portal's web process as the Procfile runs it: `python -m mlops_portal.serve`, `workers`
        uvicorn workers with a listening socket each (SO_REUSEPORT)."""
        port = free_port()
        log = open(log_path, "ab")
        self.procs.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "python"),
                    "-m",
                    "mlops_portal.serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return port

    def mlflow(self, *, python: Path, model_dir: Path, workers: int, log_path: Path) -> tuple[int, subprocess.Popen]:
        port = free_port()
        # Access logs off, as on the portal (uvicorn reads UVICORN_* options from the environment).
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "UVICORN_ACCESS_LOG": "false",
            "PATH": f"{python.parent}:{os.environ.get('PATH', '')}",
        }  # MLflow execs `uvicorn`
        proc = subprocess.Popen(
            [
                str(python.parent / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workers),
                "--env-manager",
                "local",
            ],
            cwd=str(model_dir.parent),
            env=env,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return port, proc

    def mlserver(self, *, python: Path, repository: Path, log_path: Path) -> tuple[int, subprocess.Popen]:
        """`mlserver start` on a model repository whose settings.json sets its parallel workers."""
        port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MLSERVER_HTTP_PORT": str(port),
            "MLSERVER_HOST": "127.0.0.1",
            "MLSERVER_GRPC_PORT": str(grpc_port),
            "MLSERVER_METRICS_PORT": str(metrics_port),
            "PATH": f"{python.parent}:{os.environ.get('PATH', '')}",
        }
        proc = subprocess.Popen(
            [str(python.parent / "mlserver"), "start", str(repository)],
            cwd=str(repository),
            env=env,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return port, proc

    def stop_one(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.remove(proc)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        for listener in self.sockets:
            listener.close()
        self.sockets.clear()
