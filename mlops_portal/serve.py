"""The web process: N uvicorn workers, each with a listening socket of its own (SO_REUSEPORT).

    python -m mlops_portal.serve --host 127.0.0.1 --port 8000 --workers 4

Why not `uvicorn --workers N`: its workers share one listening socket, and the process that wakes
first takes the connections; with long-lived keep-alive clients one worker was seen holding all
128 of them while the others idled (issue 11). With a socket per worker the kernel spreads new
connections over the workers by hash. Why uvicorn, not daphne: uvicorn hands the request body to
the application as it arrives, so a body over its limit is refused before it is read
(apps/core/bodylimit.py); daphne buffers the whole body first.

The parent only forks, watches and restarts: a worker that dies is started again (with a growing
pause if it keeps dying at start-up); SIGTERM/SIGINT stop every worker gracefully (uvicorn finishes
open requests; the prediction-log writer stores what it holds on exit) and then the parent.
Nothing from Django is imported in the parent, so each worker sets itself up after the fork.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import time
import traceback

APPLICATION = "mlops_portal.asgi:application"


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def detach_from_parent_group(parent: int) -> None:
    """A worker gets its stop signal once, from the parent, which decides when to stop (a supervisor
    signalling the whole group would reach the workers before the parent knows, and a second
    SIGINT makes uvicorn exit at once, skipping the graceful shutdown: open requests, the
    prediction-log writer's last batch). A worker whose parent dies (even by SIGKILL) is sent SIGTERM
    by the kernel, so none outlives it holding the port."""
    import ctypes

    os.setpgid(0, 0)
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


# Young collections every 50k net allocations instead of 700: a request's JSON parse alone makes
# thousands of containers, and with CPython's defaults the collector ran many times per batch on the
# event loop. Measured with bench/bench_batching.py (history model, 32 connections, batching on),
# three A/B pairs against (700, 10, 10): p99 120/139/89 ms vs 175/158/190 ms, req/s 892/854/769 vs
# 662/758/678. WEB_GC_THRESHOLD="700,10,10" restores CPython's defaults.
DEFAULT_GC_THRESHOLD = (50_000, 50, 100)


def gc_threshold() -> tuple[int, ...]:
    raw = os.environ.get("WEB_GC_THRESHOLD", "")
    return tuple(int(v) for v in raw.split(",")) if raw.strip() else DEFAULT_GC_THRESHOLD


def run_worker(args) -> None:
    import uvicorn

    from mlops_portal.slowclients import GuardedHttpToolsProtocol

    config = uvicorn.Config(
        APPLICATION,
        http=GuardedHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_keep_alive=args.keep_alive,
        timeout_graceful_shutdown=args.graceful,
        log_level=args.log_level,
    )
    # Import the application (Django, the models' libraries) before joining the port's socket group:
    # the kernel hands a joined socket its share of new connections at once, and they would wait
    # through the start-up.
    config.load()
    # Everything imported so far lives as long as the process: out of the collector's full scans,
    # which otherwise walk ~400k long-lived objects on the event loop (a ~270 ms pause, issue 11).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*gc_threshold())
    sock = listening_socket(args.host, args.port, args.backlog)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1)))
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--keep-alive", type=int, default=5, help="seconds an idle keep-alive connection stays open")
    parser.add_argument("--graceful", type=int, default=20, help="seconds open requests get on SIGTERM")
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-Proto/For from --forwarded-allow-ips (behind a TLS proxy)",
    )
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    # Fail here, in the parent, if the address is taken: every worker would die on it forever.
    listening_socket(args.host, args.port, args.backlog).close()

    children: dict[int, int] = {}  # pid -> slot
    starts: dict[int, list[float]] = {}
    stopping = False

    def spawn(slot: int) -> None:
        recent = [t for t in starts.get(slot, []) if time.monotonic() - t < 60]
        if len(recent) >= 5:  # dying at start-up: do not spin
            time.sleep(min(30, 2 ** (len(recent) - 4)))
        if stopping:  # SIGTERM arrived during the pause
            return
        starts[slot] = recent + [time.monotonic()]
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            detach_from_parent_group(parent)
            try:
                run_worker(args)
            except BaseException:  # noqa: BLE001 — say why, then exit non-zero (the parent logs and restarts)
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            os._exit(0)
        children[pid] = slot

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(max(1, args.workers)):
        spawn(slot)
    print(f"web: {len(children)} worker(s) on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)

    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        if slot is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        print(f"web: worker {pid} (slot {slot}) exited with {code}; starting another", file=sys.stderr, flush=True)
        spawn(slot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
