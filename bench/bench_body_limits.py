"""Memory of a web process that is sent 1 GB bodies: each must be refused (413) before it is read.

    .venv/bin/python bench/bench_body_limits.py [--bodies 20] [--size-mb 1024]

Same needs as bench_pipeline_overhead.py (PostgreSQL, Redis; own database). Starts the portal's web
process as the Procfile does (mlops_portal.serve, one uvicorn worker) and sends, without a token:
  baseline  the same number of small requests (a body of 2 bytes) to the same paths;
  declared  bodies that declare --size-mb in Content-Length, the client writing as long as the
            server reads;
  chunked   bodies streamed chunked (no declared size) of --size-mb each, cut off by the server.
The paths rotate over /healthz, the REST API, the REST predict path and the V2 infer path. Prints the
resident memory of the server's processes after each case, its growth over the start, and the
growth of each case minus the baseline's (issue 11's target: <= 50 MB after 20 bodies of 1 GB).
"""

import argparse
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log_latency import free_port, start_web  # noqa: E402
from bench_pipeline_overhead import Environment, log  # noqa: E402

MB = 1024 * 1024
PATHS = ["/healthz", "/api/v1/experiments/", "/api/v1/deployments/x/predict", "/v2/models/x/infer"]


def server_pids(parent: int) -> list[str]:
    """The server and the uvicorn workers it forked (each worker leaves the parent's process group)."""
    return [str(parent), *os.popen(f"pgrep -P {parent}").read().split()]


def rss_mb(group_pid: int) -> float:
    total = 0
    for pid in server_pids(group_pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            continue
    return total / 1024


def send(port: int, path: str, *, declared: int | None, total: int) -> int:
    """Sends `total` bytes (declared in Content-Length, or chunked) as long as the server reads; the status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
    )
    block = b"1" * MB if total >= MB else b"{}"
    if declared is None:
        block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sent = 0
    sock.settimeout(2)
    try:
        while sent < total:
            sock.sendall(block)
            sent += MB
        if declared is None:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and stopped reading
    sock.settimeout(30)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    sock.close()
    return int(head.split(b" ", 2)[1]) if head else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mb * MB

    with Environment("bench_bodies") as env:
        port = free_port()
        web = start_web(env, port)
        time.sleep(1)
        start = rss_mb(web.pid)
        log(f"web process on :{port}: {len(server_pids(web.pid))} processes, {start:.1f} MB resident after start-up")
        growth = {}
        for case, declared, total in (("baseline", 2, 2), ("declared", size, size), ("chunked", None, size)):
            statuses = {}
            started = time.perf_counter()
            for i in range(args.bodies):
                status = send(port, PATHS[i % len(PATHS)], declared=declared, total=total)
                statuses[status] = statuses.get(status, 0) + 1
            time.sleep(0.5)
            now = rss_mb(web.pid)
            growth[case] = now - start
            print(
                f"{case:9s} {args.bodies} bodies of {total / MB:8.1f} MB: statuses {statuses}, "
                f"{time.perf_counter() - started:5.1f} s, resident {now:7.1f} MB, growth {growth[case]:6.1f} MB"
            )
        for case in ("declared", "chunked"):
            extra = growth[case] - growth["baseline"]
            print(
                f"{case:9s} growth over baseline {extra:6.1f} MB (target <= 50): {'met' if extra <= 50 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
