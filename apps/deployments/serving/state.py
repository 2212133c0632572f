"""Per-process serving state: routing tables and loaded models, swapped atomically.

A process loads each model version once (sha256-verified by the registry's loader) and keeps it.
At most every `DEPLOYMENTS_GENERATION_POLL_S` (0.5 s) it reads the routing generations from Redis
(one HGETALL); a deployment whose generation grew gets a new table. While a process already serves
a deployment, the new table (and any model it needs) is built on a background thread and swapped in
when complete, so requests keep flowing on the old table meanwhile; the first table of a
deployment is built in the request. `DEPLOYMENTS_RELOAD_IN_BACKGROUND = False` builds every table
in the request (used by tests whose data lives in an uncommitted transaction).

The table's generation is the one read from the database *before* the versions are read: a change
committing in between leaves the table looking older than it is, which only causes one more reload.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import close_old_connections, connection

from ..notify import GENERATION_KEY, deployment_stamp, parse_generation, publish_generation
from ..router import Route, RoutingTable
from .inputs import InputSpec

logger = logging.getLogger(__name__)


class DeploymentNotFound(LookupError):
    pass


class ModelUnavailable(RuntimeError):
    """No version of the deployment could be loaded (the API answers 503)."""


@dataclass(frozen=True)
class ServedVersion:
    version_id: int
    model_name: str
    version: int
    task: str
    framework: str
    spec: InputSpec
    loaded: object  # apps.registry.loading.LoadedModel
    # Columns whose values the logs sample for drift: the numeric raw inputs.
    numeric_columns: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class UnavailableVersion:
    """A routed version this host cannot load, for reasons that a retry will not change."""

    version_id: int
    version: int
    reason: str

    @property
    def label(self) -> str:
        return str(self.version)


# Load failures that will not go away by retrying (the model-type plugin is missing or changed, the
# files are unsafe or corrupt): the version answers 503 with the reason and the others keep serving.
# Anything else (storage or database trouble) fails the table build, which keeps the old table and
# retries as before.
def _permanent_load_errors() -> tuple[type, ...]:
    from apps.training.frameworks import ArtifactError

    return (ArtifactError,)


@dataclass(frozen=True)
class ServingTable:
    deployment_id: int
    name: str
    stamp: str
    generation: int
    router: RoutingTable
    versions: dict  # version_id -> ServedVersion
    known_columns: frozenset
    loaded_at: float = field(default_factory=time.monotonic)
    # version_id -> UnavailableVersion: requests routed to it answer 503 with the reason while the
    # other versions keep serving.
    unavailable: dict = field(default_factory=dict)

    def primary(self) -> ServedVersion:
        """The loaded version with the most traffic: the one whose signature metadata describes."""
        weights = {vid: w for vid, w in self.router.weights().items() if vid in self.versions}
        best = max(weights, key=lambda vid: weights[vid]) if weights else next(iter(self.versions))
        return self.versions[best]



def _setting(name: str, default):
    return getattr(settings, name, default)


def _load_model(version):
    from apps.registry.loading import load_model_version

    if version.framework == "torch":
        _serve_torch_single_threaded()
    return load_model_version(version)


def _serve_torch_single_threaded() -> None:
    """A web process serves many small requests at once, in processes and in batches: torch's own
    intra-op threads only fight the other processes for the cores (and spin while idle)."""
    import torch

    threads = int(_setting("DEPLOYMENTS_TORCH_THREADS", 1))
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class ServingState:
    def __init__(self, loader=None):
        self._loader = loader or _load_model
        self._tables: dict[str, ServingTable] = {}
        self._models: dict[tuple[int, str], object] = {}
        self._remote: dict[str, tuple[str, int]] = {}
        self._next_poll = 0.0
        self._lock = threading.Lock()
        self._building: set[str] = set()
        self._failed_at: dict[str, float] = {}

    def reset(self) -> None:
        """Forget every table and model (tests; a process that must start cold)."""
        with self._lock:
            self._tables.clear()
            self._models.clear()
            self._remote.clear()
            self._next_poll = 0.0
            self._failed_at.clear()

    def _poll(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + float(_setting("DEPLOYMENTS_GENERATION_POLL_S", 0.5))
        from apps.monitoring.redis_client import get_redis

        try:
            raw = get_redis().hgetall(GENERATION_KEY)
        except redis.RedisError:
            logger.warning("cannot read routing generations from Redis; serving the current tables")
            return
        remote = {}
        for key, value in raw.items():
            parsed = parse_generation(value)
            if parsed is not None:
                remote[key.decode()] = parsed
        self._remote = remote

    @staticmethod
    def _is_current(table: ServingTable | None, remote: tuple[str, int] | None) -> bool:
        if table is None:
            return False
        if remote is None:
            return True
        stamp, generation = remote
        return stamp == table.stamp and generation <= table.generation

    def table(self, name: str) -> ServingTable:
        """The table to route this request with (DeploymentNotFound, ModelUnavailable)."""
        self._poll()
        current = self._tables.get(name)
        if self._is_current(current, self._remote.get(name)):
            return current
        if current is None:
            return self._build_now(name)
        if _setting("DEPLOYMENTS_RELOAD_IN_BACKGROUND", True):
            self._build_in_background(name)
            return current
        try:
            return self._build_now(name)
        except ModelUnavailable:
            logger.exception("keeping generation %s of %s: the new table could not be built", current.generation, name)
            return current

    def table_nowait(self, name: str) -> ServingTable | None:
        """For the event loop: the table to use now without touching the database, or None when it
        must be built first (call `table` in a thread for that)."""
        self._poll()
        current = self._tables.get(name)
        if self._is_current(current, self._remote.get(name)):
            return current
        if current is not None and _setting("DEPLOYMENTS_RELOAD_IN_BACKGROUND", True):
            self._build_in_background(name)
            return current
        return None

    def _build_now(self, name: str) -> ServingTable:
        with self._lock:
            current = self._tables.get(name)
            if self._is_current(current, self._remote.get(name)):
                return current  # another thread built it while this one waited
            table = self._build(name)
            self._install(table)
            return table

    def _build_in_background(self, name: str) -> None:
        with self._lock:
            if name in self._building:
                return
            # A version that cannot be loaded is retried every few seconds, not on every request.
            if time.monotonic() - self._failed_at.get(name, -1e9) < 5.0:
                return
            self._building.add(name)

        def run():
            try:
                table = self._build(name)
                with self._lock:
                    self._install(table)
            except DeploymentNotFound:
                with self._lock:
                    self._tables.pop(name, None)
            except Exception:
                logger.exception("could not build the new routing table of %s; the old one keeps serving", name)
                self._failed_at[name] = time.monotonic()
            finally:
                self._building.discard(name)
                close_old_connections()
                connection.close()

        threading.Thread(target=run, name=f"routing-{name}", daemon=True).start()

    def _install(self, table: ServingTable) -> None:
        """Swap in `table` and drop models no table uses any more (caller holds the lock)."""
        self._tables[table.name] = table
        self._failed_at.pop(table.name, None)
        used = {(v.version_id, v.loaded.artifact_sha256) for t in self._tables.values() for v in t.versions.values()}
        for key in [k for k in self._models if k not in used]:
            del self._models[key]
        remote = self._remote.get(table.name)
        if remote is None or remote[0] != table.stamp:
            # Nothing published yet, or left over from another incarnation of this name.
            publish_generation(table.name, table.stamp, table.generation)
            self._remote[table.name] = (table.stamp, table.generation)

    def _build(self, name: str) -> ServingTable:
        from ..models import Deployment, DeploymentVersion

        head = Deployment.objects.filter(name=name).values("pk", "generation", "created_at").first()
        if head is None:
            raise DeploymentNotFound(name)
        rows = list(
            DeploymentVersion.objects.filter(deployment_id=head["pk"])
            .select_related("model_version__registered_model", "model_version__dataset_version")
            .order_by("position", "id")
        )
        routes = [Route(r.model_version_id, r.weight, r.shadow) for r in rows if r.weight > 0 or r.shadow]
        if not routes:
            raise ModelUnavailable(f"deployment {name!r} has no version with traffic")
        versions, unavailable = {}, {}
        for row in rows:
            if not (row.weight > 0 or row.shadow):
                continue
            mv = row.model_version
            key = (mv.pk, mv.artifact_sha256)
            loaded = self._models.get(key)
            if loaded is None:
                try:
                    loaded = self._loader(mv)
                except Exception as exc:
                    reason = f"{mv} of deployment {name!r} cannot be loaded: {exc}"
                    if not isinstance(exc, _permanent_load_errors()):
                        raise ModelUnavailable(reason) from exc
                    logger.error("%s; its share of the traffic answers 503", reason)
                    unavailable[mv.pk] = UnavailableVersion(mv.pk, mv.version, reason)
                    continue
                self._models[key] = loaded
            spec = InputSpec.from_signature(mv.signature or getattr(loaded, "signature", {}) or {},
                                            kinds=getattr(getattr(loaded, "preprocessor", None), "raw_kinds", None))
            versions[mv.pk] = ServedVersion(
                version_id=mv.pk, model_name=mv.registered_model.name, version=mv.version, task=mv.task,
                framework=mv.framework, spec=spec, loaded=loaded,
                numeric_columns=tuple(c for c in spec.columns if spec.kinds.get(c) == "numeric"),
            )
        if not any(r.version_id in versions for r in routes if r.weight > 0):
            raise ModelUnavailable("; ".join(u.reason for u in unavailable.values())
                                   or f"deployment {name!r} has no loadable version")
        known = frozenset(c for v in versions.values() for c in v.spec.columns)
        return ServingTable(
            deployment_id=head["pk"], name=name, stamp=deployment_stamp(head["created_at"]), generation=head["generation"],
            router=RoutingTable(name, head["generation"], routes), versions=versions, known_columns=known,
            unavailable=unavailable,
        )

    def tables(self) -> dict[str, ServingTable]:
        return dict(self._tables)


serving_state = ServingState()
