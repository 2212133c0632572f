"""The broker restarting under a training run: the worker survives, the run ends SUCCEEDED once.

Each test has a broker of its own (a private redis-server, or a private RabbitMQ vhost) so that
stopping it never touches the machine's shared services."""

import time
import uuid

import pytest

from apps.training.choices import RunStatus
from tests.brokers import PrivateRabbitVhost, PrivateRedis

from .conftest import start_inline
from .waiting import wait_for, wait_for_epoch, wait_for_run

pytestmark = pytest.mark.worker

# ~40 reported stages of a few hundred ms each: the broker goes away in the middle.
LONG = {"max_iter": 400, "stage_size": 10, "patience": 1000, "min_samples_leaf": 5}


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def _dispatch(run, worker):
    worker.client.send_task(
        "training.run", args=[run.pk], queue=run.queue, routing_key=run.queue, task_id=run.celery_task_id
    )


def _answers(worker, timeout: float = 60) -> bool:
    return bool(wait_for(lambda: worker.ping(timeout=1), timeout=timeout, what=f"{worker.hostname} to answer"))


def _start_worker(worker_factory, settings, broker_url: str, result_url: str):
    queue = f"brk-{uuid.uuid4().hex[:8]}"
    settings.TRAINING_CPU_QUEUE = queue
    env = {"CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": result_url}
    # Two pool slots and one run: the consumer sits in BRPOP for the free slot when the broker goes,
    # the case that ended celery 5.7.0's worker for good (mlops_portal/kombu_patches.py).
    return worker_factory(queues=queue, concurrency=2, extra_env=env, broker_url=broker_url)


def test_the_worker_survives_a_redis_restart_with_a_run_in_flight_and_the_run_succeeds(
    worker_factory, price_experiment, settings, private_redis
):
    worker = _start_worker(worker_factory, settings, private_redis.url, private_redis.url)
    run = start_inline(price_experiment, framework="sklearn", model_type="gradient_boosting", params=LONG)
    _dispatch(run, worker)
    wait_for_epoch(run, 2, timeout=90)

    private_redis.stop()
    time.sleep(10)
    assert worker.proc.poll() is None, f"the worker exited while Redis was down, see {worker.log_path}"
    private_redis.start()

    run = wait_for_run(run, timeout=180)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 1
    assert run.model_versions.count() == 1
    assert worker.proc.poll() is None, f"the worker exited after Redis came back, see {worker.log_path}"
    assert _answers(worker)


@pytest.mark.skipif(not PrivateRabbitVhost.available(), reason="no RabbitMQ on this machine")
def test_the_worker_survives_a_rabbitmq_restart_with_a_run_in_flight_and_the_run_succeeds_once(
    worker_factory, price_experiment, settings, private_redis
):
    vhost = PrivateRabbitVhost().start()
    try:
        worker = _start_worker(worker_factory, settings, vhost.url, private_redis.url)
        run = start_inline(price_experiment, framework="sklearn", model_type="gradient_boosting", params=LONG)
        _dispatch(run, worker)
        wait_for_epoch(run, 2, timeout=90)

        assert wait_for(vhost.drop_connections, timeout=10, what="the worker's broker connections") >= 1
        run = wait_for_run(run, timeout=180)
        assert run.status == RunStatus.SUCCEEDED, run.error_message
        # RabbitMQ hands the unacknowledged message back when the connection drops: the duplicate
        # delivery finds the attempt alive and is dropped, so the run is trained once.
        assert run.attempts == 1
        assert run.model_versions.count() == 1
        assert worker.proc.poll() is None, f"the worker exited, see {worker.log_path}"
        assert _answers(worker)
    finally:
        vhost.stop()
