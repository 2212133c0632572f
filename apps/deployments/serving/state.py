"""Per-process serving state: routing tables and loaded models, swapped atomically.

A process loads each model version once (sha256-verified by the registry's loader) and keeps it.
Every `DEPLOYMENTS_GENERATION_POLL_S` (0.5 s) a watcher thread reads the routing generations from
Redis (one HGETALL; requests poll too, at the same rate), and every
`DEPLOYMENTS_GENERATION_DB_CHECK_S` (5 s) those of the deployments it serves from the database, so
a change Redis lost still arrives. A deployment whose generation grew gets a new table. While a
process already serves a deployment, the new table (and any model it needs) is built on a
background thread and swapped in when complete, so requests keep flowing on the old table
meanwhile; the first table of a deployment is built in the request.

The propagation bound: a process may keep answering with its old table for at most
`DEPLOYMENTS_REBUILD_TIMEOUT_S` (10 s) after it heard of the change; past that it refuses the
deployment's requests with 503 (RoutingStale) until the new table is in, rather than let a version
the change retired answer. A rebuild that hangs that long gets a second attempt beside it.

Acknowledgement: after the swap, the process waits until every request it routed with the old
table has been answered (requests are routed and logged inside `routing()`, and routing always
takes the newest table, see `current`), then records the new generation in Redis
(apps.deployments.notify.acknowledge) and keeps a heartbeat there. `DEPLOYMENTS_RELOAD_IN_BACKGROUND
= False` builds every table in the request and runs no watcher (tests whose data lives in an
uncommitted transaction).

The table's generation is the one read from the database *before* the versions are read: a change
committing in between leaves the table looking older than it is, which only causes one more reload.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import redis
from django.conf import settings
from django.db import close_old_connections, connection

from .. import notify
from ..notify import GENERATION_KEY, deployment_stamp, parse_generation, publish_generation
from ..router import Route, RoutingEpochs, RoutingTable
from .inputs import InputSpec

logger = logging.getLogger(__name__)


class DeploymentNotFound(LookupError):
    pass


class ModelUnavailable(RuntimeError):
    """No version of the deployment could be loaded (the API answers 503)."""


class RoutingStale(ModelUnavailable):
    """This process knows the deployment's routing changed but could not switch to the new table
    within the bound: it refuses (503) rather than answer with versions the change may have retired."""


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
    from apps.frameworks import ArtifactError

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
    # The deployment's micro-batching (Deployment.max_batch_size / max_batch_wait_ms).
    max_batch_size: int = 256
    max_batch_wait_ms: float = 0.0

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
        # name -> (stamp, generation): the newest this process has heard of, from Redis or the database.
        self._remote: dict[str, tuple[str, int]] = {}
        # name -> [(stamp, generation, monotonic time first heard)] not yet served: the propagation
        # bound runs from the oldest of these.
        self._heard: dict[str, list[tuple[str, int, float]]] = {}
        self._remote_lock = threading.Lock()
        # What Redis itself said at the last poll (None: not read yet).
        self._redis_seen: dict[str, tuple[str, int]] | None = None
        self._next_poll = 0.0
        self._next_db_check = 0.0
        self._lock = threading.Lock()
        # name -> {token: monotonic start} of the background builds under way.
        self._building: dict[str, dict[object, float]] = {}
        self._failed_at: dict[str, float] = {}
        self._epochs = RoutingEpochs()
        self._ack_lock = threading.Lock()
        # name -> (table, epoch): swapped in, acknowledged once the epoch has drained.
        self._pending_acks: dict[str, tuple[ServingTable, int]] = {}
        # name -> {"stamp", "generation", "acked_at"}: what this process acknowledged.
        self._acks: dict[str, dict] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    def reset(self) -> None:
        """Forget every table and model and stop the watcher (tests; a process that must start cold)."""
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(5)
        with self._lock:
            served = list(self._acks)
            self._tables.clear()
            self._models.clear()
            self._remote = {}
            self._redis_seen = None
            self._heard.clear()
            self._next_poll = self._next_db_check = 0.0
            self._failed_at.clear()
            with self._ack_lock:
                self._pending_acks.clear()
                self._acks.clear()
            self._stop = threading.Event()
        if served:
            notify.withdraw(notify.process_id(), served)

    def _poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next_poll and not force:
            return
        self._next_poll = now + notify.poll_interval_s()
        from apps.core.redis_client import get_redis

        try:
            raw = get_redis().hgetall(GENERATION_KEY)
        except redis.RedisError:
            logger.warning("cannot read routing generations from Redis; serving the current tables")
            return
        heard = {}
        for key, value in raw.items():
            parsed = parse_generation(value)
            if parsed is not None:
                heard[key.decode()] = parsed
        self._redis_seen = heard
        self._learn(heard)
        if not self._watching():
            self._flush_acks()

    def _learn(self, heard: dict[str, tuple[str, int]]) -> list[str]:
        """Takes in (stamp, generation) news; returns the names whose routing it moved on. What this
        process heard of never goes backwards: a restarted Redis that forgot a generation does not
        make a table that is behind look current again."""
        now = time.monotonic()
        moved = []
        with self._remote_lock:
            remote = dict(self._remote)
            for name, value in heard.items():
                known = remote.get(name)
                if known is None or known[0] != value[0] or value[1] > known[1]:
                    remote[name] = value
                    moved.append(name)
                    entries = self._heard.setdefault(name, [])
                    entries.append((value[0], value[1], now))
                    if len(entries) > 16:
                        del entries[1:-15]  # the oldest stays: the bound runs from it
            self._remote = remote
        return moved

    def _check_database(self) -> None:
        """The database is the truth: hear of a change whose publish Redis lost, and publish it again
        for the other processes. Runs on the watcher thread (never on the event loop)."""
        from ..models import Deployment

        names = list(self._tables)
        if not names:
            return
        try:
            rows = list(
                Deployment.objects.filter(name__in=names).values_list(
                    "name", "generation", "created_at", "max_batch_size", "max_batch_wait_ms"
                )
            )
        finally:
            close_old_connections()
            connection.close()
        found = {name: (deployment_stamp(created_at), generation) for name, generation, created_at, *_ in rows}
        for name, _, _, size, wait_ms in rows:
            self._take_batching(name, size, wait_ms)
        self._learn(found)
        seen = self._redis_seen
        for name, (stamp, generation) in found.items():
            in_redis = seen.get(name) if seen is not None else (stamp, generation)
            if in_redis is None or in_redis[0] != stamp or in_redis[1] < generation:
                # Restarted, or unreachable when the change committed: the others hear of it from here.
                logger.warning("routing generation %s of %s was not in Redis; publishing it again", generation, name)
                publish_generation(name, stamp, generation)
        for name in set(names) - set(found):
            self._build_in_background(name)  # deleted: the build drops the table

    def _take_batching(self, name: str, size: int, wait_ms: float) -> None:
        """Batching settings edited without a new routing generation (a plain save in the admin) reach
        the table here: routing is unchanged, so the table is replaced as is, with no acknowledgement."""
        with self._lock:
            table = self._tables.get(name)
            if table is not None and (table.max_batch_size, table.max_batch_wait_ms) != (size, wait_ms):
                self._tables[name] = replace(table, max_batch_size=size, max_batch_wait_ms=wait_ms)

    @staticmethod
    def _is_current(table: ServingTable | None, remote: tuple[str, int] | None) -> bool:
        if table is None:
            return False
        if remote is None:
            return True
        stamp, generation = remote
        return stamp == table.stamp and generation <= table.generation

    def _behind_s(self, name: str, table: ServingTable) -> float:
        """How long this process has known of a routing of `name` newer than `table`."""
        pending = [
            t
            for stamp, generation, t in self._heard.get(name, ())
            if stamp != table.stamp or generation > table.generation
        ]
        return time.monotonic() - pending[0] if pending else 0.0

    def _check_bound(self, name: str, current: ServingTable) -> None:
        """Raises RoutingStale once this process has known for longer than the rebuild timeout that
        `current` is not the deployment's routing any more."""
        behind = self._behind_s(name, current)
        if behind > notify.rebuild_timeout_s():
            remote = self._remote.get(name)
            raise RoutingStale(
                f"deployment {name!r} is switching to new routing (generation {remote[1] if remote else '?'}) and "
                f"this server has not finished within {notify.rebuild_timeout_s():g}s; it refuses rather than answer "
                f"with the old routing — retry shortly"
            )

    def table(self, name: str) -> ServingTable:
        """The table to route this request with (DeploymentNotFound, ModelUnavailable, RoutingStale)."""
        self._ensure_watcher()
        self._poll()
        current = self._tables.get(name)
        if self._is_current(current, self._remote.get(name)):
            return current
        if current is None:
            return self._build_now(name)
        if _setting("DEPLOYMENTS_RELOAD_IN_BACKGROUND", True):
            self._build_in_background(name)
            self._check_bound(name, current)
            return current
        try:
            return self._build_now(name)
        except ModelUnavailable:
            logger.exception("keeping generation %s of %s: the new table could not be built", current.generation, name)
            self._check_bound(name, current)
            return current

    def table_nowait(self, name: str) -> ServingTable | None:
        """For the event loop: the table to use now without touching the database, or None when it
        must be built first (call `table` in a thread for that). RoutingStale past the bound."""
        self._ensure_watcher()
        watching = self._watching()
        if not watching:
            self._poll()
        current = self._tables.get(name)
        if self._is_current(current, self._remote.get(name)):
            return current
        if current is not None and _setting("DEPLOYMENTS_RELOAD_IN_BACKGROUND", True):
            # The watcher thread polls Redis and starts rebuilds: the loop only reads (a Redis that
            # is down, or a lock held through another deployment's model load, never stalls it).
            if not watching:
                self._build_in_background(name)
            self._check_bound(name, current)
            return current
        return None

    @contextmanager
    def routing(self):
        """Around routing requests and logging their answers: a replaced table is acknowledged only
        once every request routed with it has left this block."""
        epoch = self._epochs.enter()
        try:
            yield
        finally:
            self._epochs.leave(epoch)

    def current(self, table: ServingTable) -> ServingTable:
        """The newest table of `table`'s deployment: a request that picked its table before a swap is
        routed by the new one (call inside `routing()`)."""
        latest = self._tables.get(table.name)
        return latest if latest is not None else table

    def _build_now(self, name: str) -> ServingTable:
        with self._lock:
            current = self._tables.get(name)
            if self._is_current(current, self._remote.get(name)):
                return current  # another thread built it while this one waited
            table = self._build(name)
            return self._install(table)

    def _build_in_background(self, name: str) -> None:
        token = object()
        with self._lock:
            building = self._building.setdefault(name, {})
            now = time.monotonic()
            if building:
                # Threads cannot be cancelled: one build that hangs past the timeout gets a second
                # beside it (it may still finish); more would only pile up on the same stall.
                if len(building) >= 2 or now - max(building.values()) < notify.rebuild_timeout_s():
                    return
                logger.error(
                    "the rebuild of %s has run for %.0fs; starting another", name, now - max(building.values())
                )
            # A version that cannot be loaded is retried every couple of seconds, not on every request.
            elif now - self._failed_at.get(name, -1e9) < float(_setting("DEPLOYMENTS_REBUILD_RETRY_S", 2.0)):
                return
            building[token] = now

        def run():
            try:
                table = self._build(name)
                with self._lock:
                    self._install(table)
            except DeploymentNotFound:
                with self._lock, self._ack_lock:
                    self._tables.pop(name, None)
                    self._pending_acks.pop(name, None)
                    self._acks.pop(name, None)
                notify.withdraw(notify.process_id(), [name])
            except Exception:
                logger.exception(
                    "could not build the new routing table of %s; the old one keeps serving "
                    "within the propagation bound",
                    name,
                )
                self._failed_at[name] = time.monotonic()
            finally:
                with self._lock:
                    self._building.get(name, {}).pop(token, None)
                close_old_connections()
                connection.close()

        threading.Thread(target=run, name=f"routing-{name}", daemon=True).start()

    def _install(self, table: ServingTable) -> ServingTable:
        """Swap in `table` and drop models no table uses any more (caller holds the lock). Returns the
        table now in place: a slower build that read an older generation never replaces a newer one."""
        existing = self._tables.get(table.name)
        if existing is not None and existing.stamp == table.stamp and existing.generation > table.generation:
            return existing
        self._tables[table.name] = table
        # Requests entering from here on route by `table`; those inside may still hold the old one.
        epoch = self._epochs.advance()
        with self._ack_lock:
            self._pending_acks[table.name] = (table, epoch)
        self._failed_at.pop(table.name, None)
        used = {(v.version_id, v.loaded.artifact_sha256) for t in self._tables.values() for v in t.versions.values()}
        for key in [k for k in self._models if k not in used]:
            del self._models[key]
        remote = self._remote.get(table.name)
        if remote is None or remote[0] != table.stamp:
            # Nothing published yet, or left over from another incarnation of this name.
            publish_generation(table.name, table.stamp, table.generation)
            with self._remote_lock:
                self._remote = {**self._remote, table.name: (table.stamp, table.generation)}
        with self._remote_lock:
            # What this table serves is no longer news; another incarnation's generations never will be.
            self._heard[table.name] = [
                e for e in self._heard.get(table.name, ()) if e[0] == table.stamp and e[1] > table.generation
            ]
        return table

    def _flush_acks(self, heartbeat: bool = False) -> None:
        """Acknowledges every swapped-in table whose old one is out of use; with `heartbeat`, rewrites
        this process's records of all its deployments (which also restores them after a Redis restart)."""
        acked = False
        with self._ack_lock:
            for name, (table, epoch) in list(self._pending_acks.items()):
                if self._epochs.drained(epoch):
                    self._acks[name] = {"stamp": table.stamp, "generation": table.generation, "acked_at": time.time()}
                    del self._pending_acks[name]
                    acked = True
            acks = dict(self._acks)
        if not (acked or heartbeat):
            return
        timeout = notify.rebuild_timeout_s()
        records = {}
        for name, ack in acks.items():
            table = self._tables.get(name)
            refusing = (
                table is not None
                and not self._is_current(table, self._remote.get(name))
                and self._behind_s(name, table) > timeout
            )
            records[name] = {**ack, "refusing": refusing}
        notify.acknowledge(notify.process_id(), records)

    def _watching(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive()

    def _ensure_watcher(self) -> None:
        # Not alive: none yet, or this process was forked from one that had it (threads stay behind).
        if self._watching() or not _setting("DEPLOYMENTS_RELOAD_IN_BACKGROUND", True):
            return
        with self._lock:
            if not self._watching():
                self._watcher = threading.Thread(
                    target=self._watch, args=(self._stop,), name="routing-watcher", daemon=True
                )
                self._watcher.start()

    def _watch(self, stop: threading.Event) -> None:
        """Hears of changes, starts rebuilds and acknowledges them whether or not requests arrive, so
        an idle process is as current as a busy one."""
        while not stop.wait(notify.poll_interval_s() or 0.05):
            try:
                self._tick()
            except Exception:
                logger.exception("the routing watcher's round failed; next round in %ss", notify.poll_interval_s())

    def _tick(self) -> None:
        self._poll(force=True)
        if time.monotonic() >= self._next_db_check:
            self._next_db_check = time.monotonic() + notify.database_check_s()
            self._check_database()
        for name, table in list(self._tables.items()):
            if not self._is_current(table, self._remote.get(name)):
                self._build_in_background(name)
        self._flush_acks(heartbeat=True)

    def _build(self, name: str) -> ServingTable:
        from ..models import Deployment, DeploymentVersion

        head = (
            Deployment.objects.filter(name=name)
            .values("pk", "generation", "created_at", "max_batch_size", "max_batch_wait_ms")
            .first()
        )
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
            spec = InputSpec.from_signature(
                mv.signature or getattr(loaded, "signature", {}) or {},
                kinds=getattr(getattr(loaded, "preprocessor", None), "raw_kinds", None),
            )
            versions[mv.pk] = ServedVersion(
                version_id=mv.pk,
                model_name=mv.registered_model.name,
                version=mv.version,
                task=mv.task,
                framework=mv.framework,
                spec=spec,
                loaded=loaded,
                numeric_columns=tuple(c for c in spec.columns if spec.kinds.get(c) == "numeric"),
            )
        if not any(r.version_id in versions for r in routes if r.weight > 0):
            raise ModelUnavailable(
                "; ".join(u.reason for u in unavailable.values()) or f"deployment {name!r} has no loadable version"
            )
        known = frozenset(c for v in versions.values() for c in v.spec.columns)
        return ServingTable(
            deployment_id=head["pk"],
            name=name,
            stamp=deployment_stamp(head["created_at"]),
            generation=head["generation"],
            router=RoutingTable(name, head["generation"], routes),
            versions=versions,
            known_columns=known,
            unavailable=unavailable,
            max_batch_size=head["max_batch_size"],
            max_batch_wait_ms=head["max_batch_wait_ms"],
        )

    def tables(self) -> dict[str, ServingTable]:
        return dict(self._tables)


serving_state = ServingState()
