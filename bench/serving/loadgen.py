"""A small keep-alive HTTP/1.1 load generator on asyncio streams (no third-party client).

The same generator drives every server under test, so its own cost cancels out of the ratios.
Each connection sends one request, waits for the whole response, records the latency and repeats.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    elapsed_s: float = 0.0
    transport_errors: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return self.count - self.ok + self.transport_errors

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        return {
            "requests": self.count,
            "ok": self.ok,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
        }


def build_request(host: str, port: int, path: str, body: dict | bytes, headers: dict[str, str] | None = None) -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(length or 0)


async def _connection(host, port, requests, deadline, budget, result, keep_bodies, index):
    reader = writer = None
    i = index
    while True:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        if budget is not None:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        raw = requests[i % len(requests)]
        i += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(raw)
            status, body = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.transport_errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if keep_bodies:
            result.bodies.append(body)
    if writer is not None:
        writer.close()


async def run_load(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration_s: float | None = None,
    total: int | None = None,
    keep_bodies: bool = False,
) -> LoadResult:
    """Runs `connections` keep-alive clients for `duration_s` seconds or `total` requests."""
    result = LoadResult()
    budget = [total] if total is not None else None
    started = time.perf_counter()
    deadline = started + duration_s if duration_s is not None else None
    await asyncio.gather(
        *(_connection(host, port, requests, deadline, budget, result, keep_bodies, i) for i in range(connections))
    )
    result.elapsed_s = time.perf_counter() - started
    return result


def load(host, port, requests, **kwargs) -> LoadResult:
    return asyncio.run(run_load(host, port, requests, **kwargs))
