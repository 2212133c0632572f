"""A training run survives its database connections being dropped (a PgBouncer restart, a failover,
an idle timeout): every thread of the attempt reconnects and the run finishes on the same attempt."""

import uuid

import pytest
from django.db import connection

from apps.training.choices import RunStatus
from apps.training.models import RunEvent, TrainingRun

from .conftest import start_inline
from .waiting import wait_for, wait_for_epoch, wait_for_run

pytestmark = pytest.mark.worker

# ~100 reported stages on tiny data: several seconds of training after the connections are dropped.
LONG = {"max_iter": 1000, "stage_size": 10, "patience": 1000, "min_samples_leaf": 5}

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture
def private_queue(settings):
    name = f"dbfault-{uuid.uuid4().hex[:8]}"
    settings.TRAINING_CPU_QUEUE = name
    return name


def _start(experiment):
    from apps.training.services.training_pipeline import _dispatch

    run = start_inline(experiment, framework="sklearn", model_type="gradient_boosting", params=LONG)
    _dispatch(run.pk, run.queue, run.celery_task_id)
    return run


def _terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(TERMINATE)
        return cursor.fetchone()[0]


def test_a_run_whose_database_connections_are_terminated_mid_run_still_succeeds_on_its_first_attempt(
    worker_factory, price_experiment, private_queue
):
    worker_factory(queues=private_queue, concurrency=1)
    run = _start(price_experiment)
    run = wait_for_epoch(run, 3)
    assert run.status == RunStatus.RUNNING and run.attempts == 1

    killed = _terminate_other_backends()
    assert killed >= 1  # at least the attempt's own connections (watcher, writer, training thread)
    connection.close()  # the test's side may share nothing with the worker, but start clean

    run = wait_for_run(run, timeout=90)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.attempts == 1
    assert run.model_versions.count() == 1
    assert not RunEvent.objects.filter(run=run, to_status=RunStatus.FAILED).exists()
    # The writer thread reconnected too: epochs reported after the drop were stored.
    assert run.epochs.filter(attempt=1).count() == run.total_epochs


class _Outage:
    """A real outage of this test database only: new connections refused, existing ones (but the
    test's own) terminated. Shared PostgreSQL keeps serving everyone else. PostgreSQL refuses to
    lock out the database one is connected to, so the switch goes through the `postgres` database."""

    def __init__(self):
        import psycopg

        s = connection.settings_dict
        self.name = s["NAME"]
        self.admin = psycopg.connect(
            host=s.get("HOST") or "127.0.0.1",
            port=s.get("PORT") or 5432,
            user=s.get("USER") or "postgres",
            password=s.get("PASSWORD") or None,
            dbname="postgres",
            autocommit=True,
        )

    def _allow(self, allowed: bool):
        quoted = connection.ops.quote_name(self.name)
        self.admin.execute(f"ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS {'true' if allowed else 'false'}")

    def __enter__(self):
        self._allow(False)
        _terminate_other_backends()
        return self

    def end(self):
        self._allow(True)

    def __exit__(self, *exc):
        self.end()
        self.admin.close()
        return False


def _in_thread(fn):
    """fn() on a thread of its own, so on a database connection of its own (as the worker's are)."""
    import threading

    result = {}

    def target():
        try:
            result["value"] = fn()
        except Exception as exc:  # handed back to the test
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def _running(experiment, settings, *, max_attempts):
    from apps.training.services.training_pipeline import _claim

    settings.CELERY_TASK_MAX_ATTEMPTS = max_attempts
    run = start_inline(experiment, framework="sklearn", model_type="linear")
    return _claim(run_id=run.pk, celery_task_id=run.celery_task_id)


def test_a_database_outage_shorter_than_the_retry_budget_is_waited_out(transactional_db, price_experiment, settings):
    from apps.training.services.runs import db_retrying

    settings.TRAINING_DB_RETRY_SECONDS = 10
    run = _running(price_experiment, settings, max_attempts=3)
    calls = []

    def read_status():
        calls.append(None)
        return TrainingRun.objects.get(pk=run.pk).status

    with _Outage() as outage:
        thread, result = _in_thread(lambda: db_retrying(read_status, what="test"))
        # The outage ends only once the thread has failed against it twice: ended earlier, the read
        # could succeed at the first try and the test would pass without anything waited out.
        wait_for(lambda: len(calls) >= 3, timeout=8, what="the thread to retry its read twice during the outage")
        outage.end()
        thread.join(15)
    assert not thread.is_alive(), "the read did not return within 15 s of the database coming back"
    assert result == {"value": RunStatus.RUNNING}


def test_a_database_that_stays_away_ends_the_last_attempt_failed_naming_the_database(
    transactional_db, price_experiment, settings
):
    from django.db import OperationalError

    from apps.training.services.training_pipeline import _requeue_or_fail_after_db_loss

    settings.TRAINING_DB_RETRY_SECONDS = 1
    run = _running(price_experiment, settings, max_attempts=1)
    cause = OperationalError("terminating connection due to administrator command")
    with _Outage():  # still down after the retries: nothing can be stored, the reaper decides later
        thread, result = _in_thread(lambda: _requeue_or_fail_after_db_loss(run, cause, {}))
        thread.join(15)
    assert result == {"value": False}
    assert TrainingRun.objects.get(pk=run.pk).status == RunStatus.RUNNING

    # Back within the retries: the attempt records the outcome itself, attempts honoured.
    assert _requeue_or_fail_after_db_loss(run, cause, {}) is True
    run = TrainingRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error_message.startswith("database unavailable") and "gave up after 1 of 1 attempts" in run.error_message


def test_a_database_loss_with_attempts_left_requeues_the_run_for_another_attempt(
    transactional_db, price_experiment, settings
):
    from django.db import OperationalError

    from apps.training.services.training_pipeline import _requeue_or_fail_after_db_loss

    settings.TRAINING_CPU_QUEUE = f"dbfault-{uuid.uuid4().hex[:8]}"  # nobody consumes it
    run = _running(price_experiment, settings, max_attempts=3)
    assert _requeue_or_fail_after_db_loss(run, OperationalError("server closed the connection"), {}) is True
    fresh = TrainingRun.objects.get(pk=run.pk)
    assert fresh.status == RunStatus.QUEUED and fresh.attempts == 1 and fresh.celery_task_id != run.celery_task_id
    event = RunEvent.objects.get(run=run, from_status=RunStatus.RUNNING, to_status=RunStatus.QUEUED)
    assert "lost the database" in event.reason and "requeued" in event.reason
