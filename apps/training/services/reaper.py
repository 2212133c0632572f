"""Recovering runs their worker or their queue message lost (beat's "reap runs" task, every 30 s).

RUNNING runs whose heartbeat went stale are requeued, FAILED after their attempts or CANCELLED when
a stop was requested; QUEUED runs whose message is gone are published again, then FAILED.
"""

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.training import conf
from apps.training.choices import RunStatus, stopped_status
from apps.training.models import RunEvent, TrainingRun
from apps.training.services.run_lifecycle import dispatch_or_fail
from apps.training.services.runs import run_log_append, run_status_transition

logger = logging.getLogger(__name__)


def training_runs_reap(*, now=None) -> dict:
    """Finds RUNNING runs whose heartbeat is stale (their whole worker died: the broker only hands
    the message back after its visibility timeout) and requeues them, or ends them FAILED when no
    attempts are left, or CANCELLED when a stop had been requested. Then recovers QUEUED runs whose
    queue message is gone (see _reap_lost_messages). Returns counts per outcome."""
    now = now or timezone.now()
    stale_after = float(conf.get("TRAINING_HEARTBEAT_STALE_SECONDS"))
    cutoff = now - timedelta(seconds=stale_after)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    candidates = TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    )
    for run_id in list(candidates):
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.RUNNING or (run.heartbeat_at and run.heartbeat_at >= cutoff):
                continue
            since = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
            lost = (
                f"no heartbeat from attempt {run.attempts} on {run.worker_host or '?'} since {since} "
                f"(stale after {stale_after:g}s)"
            )
            run_log_append(run_id=run.pk, level="ERROR", message=lost, attempt=run.attempts)
            if run.stop_requested:
                run_status_transition(
                    run_id=run.pk,
                    to=stopped_status(run.stop_requested),
                    reason=f"{lost}; stop was requested",
                    fields={"stop_reason": run.stop_requested},
                )
                counts["cancelled"] += 1
            elif run.attempts >= run.max_attempts:
                run_status_transition(
                    run_id=run.pk,
                    to=RunStatus.FAILED,
                    reason=f"{lost}; giving up",
                    fields={
                        "error_message": f"worker lost: {lost}; gave up after {run.attempts} of {run.max_attempts} attempts."
                    },
                )
                counts["failed"] += 1
            else:
                task_id = str(uuid.uuid4())
                run_status_transition(
                    run_id=run.pk, to=RunStatus.QUEUED, reason=f"{lost}; requeued", fields={"celery_task_id": task_id}
                )
                transaction.on_commit(lambda r=run.pk, q=run.queue, t=task_id: dispatch_or_fail(r, q, t))
                counts["requeued"] += 1
    for outcome, count in _reap_lost_messages(now=now).items():
        counts[outcome] += count
    return counts


LOST_MESSAGE = "queue message lost"
# kombu's Redis transport keeps messages of priority > 0 in lists named queue + sep + priority.
_REDIS_PRIORITY_SEP, _REDIS_PRIORITY_STEPS = "\x06\x16", (3, 6, 9)


def _task_ids_held(wanted: dict[str, str]) -> set[str] | None:
    """Of the task ids in `wanted` (task id -> queue), those whose message still exists: waiting in
    its queue on the broker, or reserved / executing / scheduled on a live worker. None when the
    broker cannot be looked into (a transport other than Redis): then a message is never declared
    lost, only published again. Raises _BrokerUnavailable when the broker does not answer."""
    import json

    from mlops_portal.celery import app

    held: set[str] = set()
    try:
        with app.connection_for_write() as conn:
            if conn.transport.driver_type != "redis":
                return None
            client = conn.default_channel.client
            for name in set(wanted.values()):
                for key in [name, *(f"{name}{_REDIS_PRIORITY_SEP}{p}" for p in _REDIS_PRIORITY_STEPS)]:
                    for raw in client.lrange(key, 0, -1):
                        try:
                            held.add(json.loads(raw)["headers"]["id"])
                        except (ValueError, KeyError, TypeError):
                            continue
        missing = [task_id for task_id in wanted if task_id not in held]
        if missing:
            # A message a live worker prefetched or runs is held too (it sits in the broker's unacked
            # set, which also keeps those of dead workers until the visibility timeout: lost ones).
            for tasks in (app.control.inspect(timeout=1.0).query_task(*missing) or {}).values():
                held.update(tasks or {})
    except Exception as exc:
        raise _BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return held & set(wanted)


class _BrokerUnavailable(Exception):
    pass


def _reap_lost_messages(*, now) -> dict:
    """QUEUED runs older than TRAINING_QUEUED_STALE_SECONDS whose message no longer exists (queued
    while no worker ran and then the broker restarted, or flushed) are published again under the
    same task id, at most max_attempts times, then end FAILED naming the lost message.

    Publishing again is harmless even when the message was not really lost (an unknown broker):
    claim_attempt (run_claims) drops a delivery for a run that is already RUNNING elsewhere or has ended."""
    stale_after = float(conf.get("TRAINING_QUEUED_STALE_SECONDS"))
    cutoff = now - timedelta(seconds=stale_after)
    counts = {"requeued": 0, "failed": 0}
    stale = list(
        TrainingRun.objects.filter(status=RunStatus.QUEUED, queued_at__lt=cutoff).values_list(
            "pk", "queue", "celery_task_id"
        )
    )
    if not stale:
        return counts
    try:
        held = _task_ids_held({task_id: queue for _, queue, task_id in stale if task_id})
    except _BrokerUnavailable as exc:  # a broker hiccup: decide next time rather than requeue blindly
        logger.warning("reaper: could not look for lost training messages on the broker: %s", exc)
        return counts
    for run_id, _, _ in stale:
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.QUEUED or run.queued_at >= cutoff:
                continue
            if held is not None and run.celery_task_id in held:
                continue  # still waiting on the broker or held by a worker: a busy queue, not a lost message
            republished = RunEvent.objects.filter(
                run=run, from_status=RunStatus.QUEUED, to_status=RunStatus.QUEUED, reason__startswith=LOST_MESSAGE
            ).count()
            where = (
                "is not on the broker nor held by any worker"
                if held is not None
                else "may be lost (broker not inspectable)"
            )
            lost = (
                f"{LOST_MESSAGE}: queued since {run.queued_at.isoformat()} (stale after {stale_after:g}s), "
                f"task {run.celery_task_id or '?'} on {run.queue!r} {where}"
            )
            run_log_append(
                run_id=run.pk, level="ERROR" if held is not None else "WARNING", message=lost, attempt=run.attempts
            )
            if held is not None and republished >= run.max_attempts:
                run_status_transition(
                    run_id=run.pk,
                    to=RunStatus.FAILED,
                    reason=f"{lost}; giving up after {republished} republishes",
                    fields={
                        "error_message": f"{lost}; published again {republished} of {run.max_attempts} times, "
                        f"giving up."[:4000]
                    },
                )
                counts["failed"] += 1
                continue
            task_id = run.celery_task_id or str(uuid.uuid4())
            # Not a status change (the run stays QUEUED): the event records the republish, and a fresh
            # queued_at gives the new message a whole stale period before it is looked at again.
            TrainingRun.objects.filter(pk=run.pk).update(queued_at=now, celery_task_id=task_id)
            count = republished + 1 if held is not None else republished
            RunEvent.objects.create(
                run=run,
                from_status=RunStatus.QUEUED,
                to_status=RunStatus.QUEUED,
                attempt=run.attempts,
                created_at=timezone.now(),
                reason=(
                    f"{lost}; published again ({count}/{run.max_attempts})"
                    if held is not None
                    else f"republished: {lost}"
                )[:4000],
            )
            transaction.on_commit(lambda r=run.pk, q=run.queue, t=task_id: dispatch_or_fail(r, q, t))
            counts["requeued"] += 1
    return counts
