"""A retired version never answers once its routing change is acknowledged.

Each web process swaps in a deployment's new routing table, waits until every request it routed
with the old one has been answered, and only then records in Redis the generation it serves; staff
see "acknowledged by k of n". A process that cannot switch within the documented bound refuses (503)
instead of answering with the old table, and a change that Redis lost still arrives through the
database.
"""

import http.client
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction

from apps.deployments import notify
from apps.deployments.models import Deployment
from apps.deployments.notify import (
    GENERATION_KEY,
    acknowledge,
    acknowledgement_times,
    deployment_stamp,
    propagation_bound_s,
    routing_acknowledgement,
)
from apps.deployments.router import RoutingEpochs
from apps.deployments.serving.predict import Predictor
from apps.deployments.serving.protocol import describe_error
from apps.deployments.serving.state import RoutingStale, ServingState, _load_model
from apps.deployments.services.model_deployment_service import (
    deployment_create,
    deployment_rollback,
    deployment_set_traffic,
)
from apps.monitoring.models import PredictionLog
from apps.core.redis_client import get_redis
from apps.monitoring.services.logbuffer import prediction_logs_flush

from .conftest import WebProcess, free_port, record, wait_until

NAME = "price-direction"
BODY = {"dataframe_records": [record()]}


@pytest.fixture
def background(settings, transactional_db):
    """Tables rebuilt on a background thread with a watcher, as in a web process, on committed data;
    short bounds so the tests run in seconds."""
    settings.DEPLOYMENTS_RELOAD_IN_BACKGROUND = True
    settings.DEPLOYMENTS_GENERATION_POLL_S = 0.05
    settings.DEPLOYMENTS_REBUILD_TIMEOUT_S = 0.6
    settings.DEPLOYMENTS_GENERATION_DB_CHECK_S = 0.2
    states = []

    def make(loader=None):
        state = ServingState(loader=loader)
        states.append(state)
        return state

    yield make
    for state in states:
        state.reset()
    # The answers' log writer must be idle before the test's tables are truncated.
    prediction_logs_flush()


def answer(state, name=NAME):
    """The version number that answers one real prediction, or the exception the request gets."""
    try:
        return (
            Predictor(state=state).predict(deployment=name, body=BODY, protocol="mlflow", raw_body=b"{}").model_version
        )
    except Exception as exc:  # noqa: BLE001 - the test looks at what a client would get
        return exc


def routing_of(deployment) -> tuple[str, int]:
    deployment = Deployment.objects.get(pk=deployment.pk)
    return deployment_stamp(deployment.created_at), deployment.generation


@pytest.mark.parametrize("loss", ["redis restarted and forgot it", "redis was unreachable at commit"])
def test_a_routing_change_that_redis_lost_still_reaches_a_serving_process_through_the_database(
    background, make_version, staff_user, loss
):
    old, new = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name=NAME, model_version=old, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": old, "weight": 50}, {"model_version": new, "weight": 50}],
    )
    state = background()
    assert wait_until(lambda: answer(state) == str(old.version), timeout=10)
    before = get_redis().hget(GENERATION_KEY, NAME)
    deployment_rollback(deployment=deployment, model_version=new, user=staff_user, reason=loss)
    if loss == "redis restarted and forgot it":
        get_redis().delete(GENERATION_KEY)  # all a restart of the non-persistent Redis leaves
    else:
        get_redis().hset(GENERATION_KEY, NAME, before)  # the publish never happened
    changed = time.monotonic()
    assert wait_until(lambda: all(answer(state) == str(new.version) for _ in range(20)), timeout=5), (
        f"v{old.version} still answers {time.monotonic() - changed:.1f}s after the rollback"
    )
    # The process publishes it again at its next database check (it may have heard of the change
    # through Redis just before Redis lost it), so the other processes hear of it as usual.
    stamp, generation = routing_of(deployment)
    republished = f"{stamp}:{generation}".encode()
    assert wait_until(
        lambda: get_redis().hget(GENERATION_KEY, NAME) == republished, timeout=notify.database_check_s() + 5
    ), get_redis().hget(GENERATION_KEY, NAME)


def test_a_process_whose_rebuild_stalls_keeps_serving_within_the_bound_then_refuses_with_503(
    background, make_version, staff_user, settings
):
    old, new = make_version(seed=0), make_version(seed=1)
    release = threading.Event()

    def stalling_loader(mv):
        # The new version's storage hangs, as a stalled network volume would.
        if mv.pk == new.pk:
            release.wait(30)
        return _load_model(mv)

    deployment = deployment_create(name=NAME, model_version=old, user=staff_user)
    state = background(stalling_loader)
    assert answer(state) == str(old.version)
    deployment_rollback(deployment=deployment, model_version=new, user=staff_user, reason="stall")
    changed = time.monotonic()
    stamp, generation = routing_of(deployment)
    try:
        outcomes = []
        refused = wait_until(lambda: isinstance(outcomes.append(answer(state)) or outcomes[-1], Exception), timeout=5)
        stalled_for = time.monotonic() - changed
        assert refused, f"v{old.version} still answers {stalled_for:.1f}s after the rollback"
        # No request is dropped while the switch is within the bound; past it, a 503 that says why.
        assert set(outcomes[:-1]) <= {str(old.version)} and len(outcomes) > 1
        assert stalled_for >= settings.DEPLOYMENTS_REBUILD_TIMEOUT_S
        error = outcomes[-1]
        assert isinstance(error, RoutingStale)
        status, message, _ = describe_error(error, NAME)
        assert status == 503 and "switching to new routing" in message
        # Staff see which process is behind and that it refuses (its next heartbeat says so).
        expected = [
            {"process": f"{socket.gethostname()}:{os.getpid()}", "generation": generation - 1, "refusing": True}
        ]
        assert wait_until(
            lambda: routing_acknowledgement(name=NAME, stamp=stamp, generation=generation)["lagging"] == expected,
            timeout=5,
        )
    finally:
        release.set()
    assert wait_until(lambda: answer(state) == str(new.version), timeout=10)
    assert wait_until(lambda: routing_acknowledgement(name=NAME, stamp=stamp, generation=generation)["complete"])


def test_a_swapped_table_is_acknowledged_only_after_the_requests_routed_with_the_old_one_are_answered(
    background, make_version, staff_user
):
    old, new = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name=NAME, model_version=old, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": old, "weight": 50}, {"model_version": new, "weight": 50}],
    )
    state = background()
    predictor = Predictor(state=state)
    table = state.table(NAME)
    deployment_rollback(deployment=deployment, model_version=new, user=staff_user, reason="drain")
    stamp, generation = routing_of(deployment)
    with state.routing():  # a request routed with the old table, not answered yet
        assert wait_until(lambda: state.tables()[NAME].generation == generation, timeout=5)
        time.sleep(0.3)  # several watcher rounds: none may acknowledge while the request is inside
        assert acknowledgement_times(name=NAME, stamp=stamp, generation=generation) == {}
        # Routing takes the newest table, however old the one the request picked up first.
        keys = [f"k{i}" for i in range(40)]
        assert {
            predictor.prepare(
                table=table, body=BODY, protocol="mlflow", raw_body=b"{}", routing_key=k, started=time.perf_counter()
            ).served.version_id
            for k in keys
        } == {new.pk}
        assert {table.router.pick(k) for k in keys} == {old.pk, new.pk}
    left = time.time()
    assert wait_until(lambda: acknowledgement_times(name=NAME, stamp=stamp, generation=generation), timeout=5)
    assert list(acknowledgement_times(name=NAME, stamp=stamp, generation=generation).values())[0] >= left


def test_a_swap_waits_only_for_the_requests_that_entered_before_it():
    epochs = RoutingEpochs()
    before = epochs.enter()
    swap = epochs.advance()
    after = epochs.enter()
    assert not epochs.drained(swap)
    epochs.leave(before)
    assert epochs.drained(swap)  # the request that entered after the swap routes by the new table
    epochs.leave(after)
    assert epochs.drained(epochs.advance())


def test_acknowledgement_counts_live_processes_and_a_process_whose_heartbeat_stopped_drops_out():
    stamp, now = "1700000000000000", time.time()
    acknowledge("web-a:1", {NAME: {"stamp": stamp, "generation": 7, "acked_at": now - 1, "refusing": False}}, now=now)
    acknowledge("web-b:2", {NAME: {"stamp": stamp, "generation": 6, "acked_at": now - 9, "refusing": False}}, now=now)
    acknowledge(
        "web-gone:3", {NAME: {"stamp": stamp, "generation": 5, "acked_at": now - 99, "refusing": False}}, now=now - 60
    )
    state = routing_acknowledgement(name=NAME, stamp=stamp, generation=7, now=now)
    assert (state["acknowledged"], state["processes"], state["complete"]) == (1, 2, False)
    assert state["lagging"] == [{"process": "web-b:2", "generation": 6, "refusing": False}]
    assert state["bound_s"] == propagation_bound_s()
    assert b"web-gone:3" not in get_redis().hkeys(f"mlops:deployments:ack:{NAME}")
    # Another incarnation of the name (deleted and created again) acknowledges nothing of this one.
    assert routing_acknowledgement(name=NAME, stamp="1800000000000000", generation=1, now=now)["acknowledged"] == 0


def test_the_deployment_detail_says_how_many_web_processes_serve_its_current_routing(staff_api, deployment):
    stamp, generation = routing_of(deployment)
    now = time.time()
    acknowledge("web-a:1", {NAME: {"stamp": stamp, "generation": generation, "acked_at": now, "refusing": False}})
    acknowledge("web-b:2", {NAME: {"stamp": stamp, "generation": generation - 1, "acked_at": now, "refusing": True}})
    routing = staff_api.get(f"/api/v1/deployments/{NAME}").json()["routing"]
    assert routing == {
        "generation": generation,
        "acknowledged": 1,
        "processes": 2,
        "complete": False,
        "bound_s": propagation_bound_s(),
        "lagging": [{"process": "web-b:2", "generation": generation - 1, "refusing": True}],
    }


class Client(threading.Thread):
    """Keep-alive client posting predictions to one web process until stopped."""

    def __init__(self, port: int, token: str, index: int):
        super().__init__(daemon=True)
        self.port, self.token, self.index = port, token, index
        self.results: list[tuple[int, str, str]] = []  # (status, version, request id)
        self.stopping = threading.Event()

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stopping.is_set():
            body = json.dumps(
                {"dataframe_records": [record(0.1 * (i % 7), -0.2, 0.3)], "routing_key": f"c{self.index}-{i % 50}"}
            )
            try:
                connection.request(
                    "POST",
                    f"/api/v1/deployments/{NAME}/predict",
                    body=body,
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                parsed = json.loads(response.read()) if response.status == 200 else {}
                self.results.append((response.status, parsed.get("model_version", ""), parsed.get("request_id", "")))
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((0, type(exc).__name__, ""))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            i += 1
        connection.close()


@pytest.fixture
def three_web_processes(transactional_db):
    processes = [WebProcess(free_port()) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda p: p.start(), processes))
        yield processes
    finally:
        for process in processes:
            process.stop()


def test_no_web_process_answers_with_a_retired_version_after_it_acknowledged_the_rollback_under_load(
    three_web_processes, make_version, staff_user, analyst_user
):
    from apps.core.services import api_token_create

    old, new = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name=NAME, model_version=old, user=staff_user)
    deployment_set_traffic(
        deployment=deployment,
        user=staff_user,
        allocations=[{"model_version": old, "weight": 50}, {"model_version": new, "weight": 50}],
    )
    _, token = api_token_create(user=analyst_user, name="routing-ack")

    def ready(process) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=60)
        connection.request("GET", f"/v2/models/{NAME}/ready", headers={"Authorization": f"Bearer {token}"})
        status = connection.getresponse().status
        connection.close()
        return status

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(ready, three_web_processes)) == [200] * 3
    stamp, generation = routing_of(deployment)
    assert wait_until(
        lambda: routing_acknowledgement(name=NAME, stamp=stamp, generation=generation)["processes"] == 3, timeout=10
    ), "every web process keeps a heartbeat for the deployment it serves"
    clients = [Client(process.port, token, i) for i, process in enumerate(three_web_processes) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        assert wait_until(lambda: all(len({r[1] for r in c.results}) == 2 for c in clients), timeout=30), (
            "both versions answer every client before the rollback"
        )
        with transaction.atomic():
            deployment_rollback(deployment=deployment, model_version=new, user=staff_user, reason="retire v1")
        committed = time.time()
        stamp, generation = routing_of(deployment)
        acked = wait_until(
            lambda: routing_acknowledgement(name=NAME, stamp=stamp, generation=generation)["complete"],
            timeout=propagation_bound_s() + 5,
        )
        assert acked, routing_acknowledgement(name=NAME, stamp=stamp, generation=generation)
        ack_times = acknowledgement_times(name=NAME, stamp=stamp, generation=generation)
        counts = [len(c.results) for c in clients]
        assert wait_until(lambda: all(len(c.results) >= n + 20 for c, n in zip(clients, counts)), timeout=30), (
            "every client is served after the acknowledgement"
        )
    finally:
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.join(15)
    print(
        f"acknowledged by all 3 within {max(ack_times.values()) - committed:.2f}s of the commit "
        f"(bound {propagation_bound_s():g}s)"
    )

    assert len(ack_times) == 3 and max(ack_times.values()) - committed <= propagation_bound_s()
    results = [(client.port, *r) for client in clients for r in client.results]
    failures = [r for r in results if r[1] != 200]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    prediction_logs_flush()
    served_at = {
        str(r): t.timestamp()
        for r, t in PredictionLog.objects.filter(deployment=deployment, shadow=False).values_list(
            "request_id", "served_at"
        )
    }
    assert set(served_at) == {r[3] for r in results}, "every answer is in the prediction log"
    process_of = {p.port: serving_process(p, ack_times) for p in three_web_processes}
    assert set(process_of.values()) == set(ack_times)
    late = [
        (port, version, served_at[request_id] - ack_times[process_of[port]])
        for port, _, version, request_id in results
        if version == str(old.version) and served_at[request_id] > ack_times[process_of[port]]
    ]
    assert not late, f"v{old.version} answered after its process acknowledged the rollback: {late[:5]}"
    after = [r for r in results if served_at[r[3]] > ack_times[process_of[r[0]]]]
    assert {r[2] for r in after} == {str(new.version)} and {r[0] for r in after} == set(process_of)
    retired_rows = PredictionLog.objects.filter(
        deployment=deployment, model_version=old, shadow=False, served_at__gt=_aware(max(ack_times.values()))
    )
    assert not retired_rows.exists()


def serving_process(web: WebProcess, ack_times: dict) -> str:
    """The acknowledging process (host:pid) behind a web process's port: the process itself, or the
    one worker it runs."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    family, frontier = {web.proc.pid}, [web.proc.pid]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        family.update(children)
        frontier = children
    ids = [f"{socket.gethostname()}:{pid}" for pid in family if f"{socket.gethostname()}:{pid}" in ack_times]
    assert len(ids) == 1, f"port {web.port}: acknowledging processes {ids}"
    return ids[0]


def _aware(epoch: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc)
