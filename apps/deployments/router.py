"""Weighted traffic splitting with sticky keys.

Each version owns an interval of the line [0, 1), in the deployment's version order, as wide as its
weight. A request with a routing key lands on `bucket(key)` (a stable hash into [0, 1)), so the same
key reaches the same version while the weights stand; without a key it lands on a random point.
Keeping the champion first means a growing challenger only takes keys from the end of the line.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
from dataclasses import dataclass

_TWO_64 = float(2**64)


def bucket(deployment: str, key: str) -> float:
    """The key's point on [0, 1); salted with the deployment so deployments split independently."""
    digest = hashlib.blake2b(f"{deployment}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def routing_key_hash(key: str) -> str:
    """What the logs keep of a routing key: enough to check stickiness, not the customer id itself."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Route:
    version_id: int
    weight: float
    shadow: bool = False


class RoutingTable:
    """Immutable; a new table replaces the old one when the deployment's weights change."""

    def __init__(self, deployment: str, generation: int, routes: list[Route]):
        self.deployment = deployment
        self.generation = generation
        self.routes = tuple(routes)
        live = [r for r in routes if not r.shadow and r.weight > 0]
        total = sum(r.weight for r in live)
        self.version_ids = tuple(r.version_id for r in live)
        bounds, acc = [], 0.0
        for route in live:
            acc += route.weight / total
            bounds.append(acc)
        if bounds:
            bounds[-1] = 1.0  # rounding must never leave a gap at the top of the line
        self._bounds = tuple(bounds)
        self.shadow_ids = tuple(r.version_id for r in routes if r.shadow and r.version_id not in self.version_ids)
        self._rng = random.Random()

    @property
    def empty(self) -> bool:
        return not self.version_ids

    def pick(self, key: str | None = None) -> int:
        """The version id serving this request."""
        if not self.version_ids:
            raise LookupError(f"deployment {self.deployment!r} has no version with traffic")
        point = bucket(self.deployment, key) if key is not None else self._rng.random()
        return self.version_ids[min(bisect.bisect_right(self._bounds, point), len(self.version_ids) - 1)]

    def weights(self) -> dict[int, float]:
        return {r.version_id: r.weight for r in self.routes if not r.shadow}


class RoutingEpochs:
    """Which requests may still hold a replaced table: routing (up to logging the answers) happens
    inside the epoch current when it started; swapping a table in advances the epoch, and the old
    table is out of use once nobody who entered before the advance is still inside."""

    def __init__(self):
        self._lock = threading.Lock()
        self._current = 0
        self._active: dict[int, int] = {}

    def enter(self) -> int:
        with self._lock:
            epoch = self._current
            self._active[epoch] = self._active.get(epoch, 0) + 1
            return epoch

    def leave(self, epoch: int) -> None:
        with self._lock:
            left = self._active[epoch] - 1
            if left:
                self._active[epoch] = left
            else:
                del self._active[epoch]

    def advance(self) -> int:
        with self._lock:
            self._current += 1
            return self._current

    def drained(self, epoch: int) -> bool:
        with self._lock:
            return all(e >= epoch for e in self._active)
