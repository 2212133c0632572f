"""A candidate evaluation whose queue message was lost does not stay QUEUED forever: the reaper
(beat, housekeeping queue) sends it again, leaves one whose message still waits on the broker
alone, and after DELIVERY_MAX_DISPATCHES messages ends it FAILED naming the lost message. Real
rows, the real Redis broker (a private queue no worker reads) and the task functions themselves."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.delivery.choices import EvaluationStatus
from apps.delivery.models import CandidateEvaluation, DeliveryPolicy
from apps.delivery.services import delivery_policy_save
from apps.delivery.tasks import evaluate_candidate, reap_lost_evaluations

NOTHING = {"redispatched": 0, "failed": 0}


@pytest.fixture
def private_queue(settings):
    name = f"lost-eval-{uuid.uuid4().hex[:8]}"
    settings.TRAINING_CPU_QUEUE = name  # where evaluations are sent
    settings.DELIVERY_QUEUED_STALE_SECONDS = 600
    settings.DELIVERY_MAX_DISPATCHES = 2
    yield name
    _purge(name)


def _purge(queue: str) -> None:
    """What a broker restart without persistence does to a waiting message."""
    from mlops_portal.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


@pytest.fixture
def lost_evaluation(deployment, challenger):
    """An evaluation committed QUEUED whose message never reached the broker (no dispatch at all)."""
    policy = delivery_policy_save(policy=DeliveryPolicy(deployment=deployment, auto_challenge=True))
    return CandidateEvaluation.objects.create(policy=policy, candidate=challenger, trigger="a new version")


def _reap(capture, now):
    from apps.delivery.reaper import candidate_evaluations_reap

    with capture(execute=True):  # the re-send happens on commit
        return candidate_evaluations_reap(now=now)


def test_a_lost_evaluation_is_sent_again_left_alone_while_its_message_waits_then_failed_naming_it(
    lost_evaluation, private_queue, django_capture_on_commit_callbacks
):
    capture, evaluation = django_capture_on_commit_callbacks, lost_evaluation
    assert _reap(capture, evaluation.created_at + timedelta(seconds=60)) == NOTHING  # young: left alone

    assert _reap(capture, evaluation.created_at + timedelta(seconds=601)) == NOTHING | {"redispatched": 1}
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.QUEUED and evaluation.dispatches == 1 and evaluation.celery_task_id
    assert any(
        "queue message lost" in line["message"] and "not on the broker" in line["message"] for line in evaluation.log
    )
    first_message = evaluation.celery_task_id

    later = timezone.now() + timedelta(seconds=601)
    assert _reap(capture, later) == NOTHING  # its message waits on the broker: a busy queue, not a lost one
    assert reap_lost_evaluations() == NOTHING  # the beat task, at the real time: not stale yet

    _purge(private_queue)
    later = timezone.now() + timedelta(seconds=601)
    assert _reap(capture, later) == NOTHING | {"redispatched": 1}
    evaluation.refresh_from_db()
    assert evaluation.dispatches == 2 and evaluation.celery_task_id != first_message  # a fresh id per message

    _purge(private_queue)
    later = timezone.now() + timedelta(seconds=601)
    assert _reap(capture, later) == NOTHING | {"failed": 1}
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.FAILED and evaluation.finished_at
    assert evaluation.reason.startswith("queue message lost") and "giving up" in evaluation.reason
    assert _reap(capture, later + timedelta(seconds=601)) == NOTHING  # ended: never looked at again

    # A copy of a message turning up after all is a no-op for an ended evaluation.
    evaluate_candidate.apply(args=[evaluation.pk], task_id=first_message)
    evaluation.refresh_from_db()
    assert evaluation.status == EvaluationStatus.FAILED and evaluation.started_at is None


def test_a_late_copy_of_the_lost_message_and_the_re_sent_one_run_the_evaluation_once(
    lost_evaluation, private_queue, django_capture_on_commit_callbacks
):
    capture, evaluation = django_capture_on_commit_callbacks, lost_evaluation
    assert _reap(capture, evaluation.created_at + timedelta(seconds=601)) == NOTHING | {"redispatched": 1}
    evaluation.refresh_from_db()
    resent = evaluation.celery_task_id

    evaluate_candidate.apply(args=[evaluation.pk], task_id="the-message-thought-lost")  # it claims first
    evaluation.refresh_from_db()
    assert evaluation.status not in (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)
    assert evaluation.celery_task_id == "the-message-thought-lost"
    ran = (evaluation.status, evaluation.finished_at, len(evaluation.log))

    evaluate_candidate.apply(args=[evaluation.pk], task_id=resent)  # the re-sent copy: a duplicate
    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.finished_at, len(evaluation.log)) == ran
    assert reap_lost_evaluations() == NOTHING


def test_beat_runs_the_reaper_and_the_archiver_on_the_housekeeping_queue(db):
    from django_celery_beat.models import PeriodicTask

    from mlops_portal.celery import app

    rows = dict(PeriodicTask.objects.filter(task__startswith="delivery.").values_list("task", "queue"))
    assert rows == {
        "delivery.reap_lost_evaluations": "housekeeping",
        "delivery.archive_undeployed_versions": "housekeeping",
    }
    for name in rows:  # a call that names no queue (by hand, from a shell) goes there too
        assert app.amqp.router.route({}, name)["queue"].name == "housekeeping"
