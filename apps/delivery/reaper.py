"""Recovering candidate evaluations whose queue message was lost (beat's "reap evaluations" task).

The training reaper's pattern for QUEUED runs (apps/training/services/reaper.py): a QUEUED
evaluation whose latest message is older than DELIVERY_QUEUED_STALE_SECONDS and is neither waiting
on the broker nor held by a live worker (queued while no worker ran, then the broker restarted or
was flushed) is sent again; after DELIVERY_MAX_DISPATCHES messages it ends FAILED naming the lost
message, so a policy never waits forever on a candidate nobody will score.

Sending again is safe even when the message was not really lost: _claim lets only the first
message that finds the evaluation QUEUED run it.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.training.services.reaper import LOST_MESSAGE, _BrokerUnavailable, _task_ids_held

from . import conf
from .choices import EvaluationStatus
from .models import CandidateEvaluation

logger = logging.getLogger(__name__)


def candidate_evaluations_reap(*, now=None) -> dict:
    """Re-dispatches or fails QUEUED evaluations whose message is gone. Returns
    {"redispatched": n, "failed": n}."""
    from apps.training import conf as training_conf

    from .services import _dispatch, _finish, _note

    now = now or timezone.now()
    stale_after = conf.get("DELIVERY_QUEUED_STALE_SECONDS")
    max_dispatches = conf.get("DELIVERY_MAX_DISPATCHES")
    cutoff = now - timedelta(seconds=stale_after)
    counts = {"redispatched": 0, "failed": 0}
    stale = list(
        CandidateEvaluation.objects.filter(status=EvaluationStatus.QUEUED)
        .alias(last_sent=Coalesce("dispatched_at", "created_at"))
        .filter(last_sent__lt=cutoff)
        .values_list("pk", "celery_task_id")
    )
    if not stale:
        return counts
    queue = training_conf.get("TRAINING_CPU_QUEUE")  # where _dispatch sends them
    try:
        held = _task_ids_held({task_id: queue for _, task_id in stale if task_id})
    except _BrokerUnavailable as exc:  # a broker hiccup: decide next time rather than re-send blindly
        logger.warning("reaper: could not look for lost evaluation messages on the broker: %s", exc)
        return counts
    for evaluation_id, _ in stale:
        with transaction.atomic():
            evaluation = CandidateEvaluation.objects.select_for_update().get(pk=evaluation_id)
            last_sent = evaluation.dispatched_at or evaluation.created_at
            if evaluation.status != EvaluationStatus.QUEUED or last_sent >= cutoff:
                continue  # claimed or re-sent since the list was read
            if held is not None and evaluation.celery_task_id in held:
                continue  # waiting behind other work on the broker, or prefetched: a busy queue, not a lost message
            where = (
                "is not on the broker nor held by any worker"
                if held is not None
                else "may be lost (broker not inspectable)"
            )
            lost = (
                f"{LOST_MESSAGE}: queued since {last_sent.isoformat()} (stale after {stale_after}s), "
                f"task {evaluation.celery_task_id or '?'} on {queue!r} {where}"
            )
            # Without a way to look into the broker a message is never declared lost, only re-sent.
            if held is not None and evaluation.dispatches >= max_dispatches:
                _finish(
                    evaluation,
                    EvaluationStatus.FAILED,
                    f"{lost}; sent {evaluation.dispatches} of {max_dispatches} times, giving up",
                )
                counts["failed"] += 1
                continue
            _note(evaluation, f"{lost}; sending again ({evaluation.dispatches + 1}/{max_dispatches})", "WARNING")
            # A fresh dispatched_at now, so the next look is a whole stale period away even if the
            # send below (after commit) is slow; _dispatch sets it again when it sends.
            evaluation.dispatched_at = now
            evaluation.save(update_fields=["log", "dispatched_at"])
            transaction.on_commit(lambda pk=evaluation.pk: _dispatch(pk))
            counts["redispatched"] += 1
    return counts
