"""Runs the Procfile's processes under supervisord, which restarts one that dies instead of stopping
the rest (honcho, which `make run` used before, SIGTERMs everything when one process exits).

The Procfile stays the one list of processes: the supervisord config is generated from it on every
start. Each program runs through `/bin/sh -c 'exec …'`, so `${VAR:-default}` in the Procfile expands
as it did under honcho and supervisord signals the program itself; every program is its own process
group (supervisord's doing) and is stopped and killed as a group, pool children included; `web`'s
workers leave its group on purpose (mlops_portal/serve.py: they are stopped by their parent, and
die with it), so `web` gets the time its graceful shutdown and last log batch need.

    python -m mlops_portal.supervise web worker housekeeping beat      # make run
    python -m mlops_portal.supervise --config-only --dir /srv/portal/var/supervisor web worker ...

No Django import here: it runs before anything else and must not need the database.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>.+)$")
# Celery waits for running tasks on SIGTERM (a warm shutdown); a training attempt killed after this
# is handed back to the broker and counted in the database, so the wait only needs to be polite.
STOP_WAIT_SECONDS = {
    "worker": 60,
    "gpuworker": 60,
    "housekeeping": 30,
    # serve.py's 20 s for open requests + PREDICTION_LOG_SHUTDOWN_S (10 s) for the log
    "web": 40,
    # grpc_serve.py's 10 s for open calls + PREDICTION_LOG_SHUTDOWN_S (10 s) for the log
    "grpc": 30,
}
DEFAULT_STOP_WAIT_SECONDS = 20


def read_procfile(path: str | Path) -> dict[str, str]:
    """{name: command} in file order; blank lines and `#` comments skipped. ValueError names the
    line that is neither."""
    processes: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected 'name: command', got {raw!r}")
        if match["name"] in processes:
            raise ValueError(f"{path}:{number}: process {match['name']!r} is defined twice")
        processes[match["name"]] = match["command"].strip()
    return processes


def _ini(value: str) -> str:
    # supervisord expands %(name)s in values: a literal % (celery's -n cpu@%h) must be doubled.
    return value.replace("%", "%%")


def program_command(command: str) -> str:
    """The Procfile line as supervisord's `command=`: a shell, for the Procfile's expansions, that
    replaces itself with the program (leading VAR=value words go through env)."""
    words = command.split()
    assignments = []
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        assignments.append(words.pop(0))
    rest = command.split(None, len(assignments))[-1] if assignments else command
    simple = not re.search(r"[;&|<>()`]", rest)
    if simple:
        script = "exec " + (f"env {' '.join(assignments)} " if assignments else "") + rest
    else:  # a compound line: no exec, but the group stop still reaches every process in it
        script = command
    return f"/bin/sh -c {shlex.quote(script)}"


def supervisord_config(
    *, processes: dict[str, str], names: list[str], directory: str | Path, state_dir: str | Path
) -> str:
    """supervisord.conf text running `names` (Procfile entries) from `directory`, with its socket,
    pid file and logs in `state_dir`: one log per program, supervisord's own log (starts, exits,
    restarts) on its standard output."""
    unknown = [n for n in names if n not in processes]
    if unknown:
        raise ValueError(f"not in the Procfile: {', '.join(unknown)} (it has {', '.join(processes)})")
    state = Path(state_dir).resolve()
    lines = [
        "; Generated from the Procfile by mlops_portal/supervise.py on every start: edit the Procfile.",
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/stdout",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={_ini(str(state / 'supervisord.pid'))}",
        f"childlogdir={_ini(str(state))}",
        "",
        "[unix_http_server]",
        f"file={_ini(str(state / 'supervisor.sock'))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_ini(str(state / 'supervisor.sock'))}",
        "",
    ]
    for name in names:
        lines += [
            f"[program:{name}]",
            f"command={_ini(program_command(processes[name]))}",
            f"directory={_ini(str(Path(directory).resolve()))}",
            "autostart=true",
            # Restarted whenever it exits; a program that cannot stay up 5 s is tried 10 times
            # (1 s, 2 s, … apart), then left FATAL with the reason in supervisord's log.
            "autorestart=true",
            "startsecs=5",
            "startretries=10",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS.get(name, DEFAULT_STOP_WAIT_SECONDS)}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_ini(str(state / f'{name}.log'))}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=3",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlops_portal.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="Procfile entries to run, e.g. web worker housekeeping beat")
    parser.add_argument("--procfile", default=str(ROOT / "Procfile"))
    parser.add_argument(
        "--dir",
        default=str(ROOT / "var" / "supervisor"),
        help="where the config, socket, pid file and logs go (default var/supervisor)",
    )
    parser.add_argument("--config-only", action="store_true", help="write the config, print its path and stop")
    args = parser.parse_args(argv)

    state = Path(args.dir)
    state.mkdir(parents=True, exist_ok=True)
    try:
        config = supervisord_config(
            processes=read_procfile(args.procfile),
            names=args.names,
            directory=Path(args.procfile).resolve().parent,
            state_dir=state,
        )
    except ValueError as exc:
        parser.error(str(exc))
    path = state / "supervisord.conf"
    path.write_text(config)
    if args.config_only:
        print(path)
        return
    # The programs find python and celery next to this interpreter (the venv), as under honcho.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    supervisord = shutil.which("supervisord", path=bindir) or shutil.which("supervisord")
    if supervisord is None:
        parser.error("supervisord is not installed: pip install -r requirements.txt")
    print(
        f"supervisord: {', '.join(args.names)}; logs in {state}/<name>.log; status: supervisorctl -c {path} status",
        flush=True,
    )
    os.execv(supervisord, [supervisord, "-n", "-c", str(path)])


if __name__ == "__main__":
    main()
