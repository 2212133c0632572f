"""A new version is scored beside the champion on later labelled rows before it gets any traffic."""

import pandas as pd
import pytest

from apps.datasets.selectors import dataset_version_dataframe
from apps.delivery.choices import EvaluationAction, EvaluationStatus
from apps.delivery.demo import next_days_frame
from apps.delivery.models import CandidateEvaluation, DeliveryPolicy
from apps.delivery.services import candidate_evaluation_execute, candidate_evaluations_request, delivery_policy_save
from apps.deployments.choices import RolloutAction, RolloutStatus
from apps.deployments.models import Rollout
from apps.deployments.selectors import deployment_open_rollout
from apps.deployments.services.rollouts import rollout_transition
from apps.registry.selectors import model_aliases

from .conftest import train


def _policy(deployment, **fields):
    return delivery_policy_save(policy=DeliveryPolicy(deployment=deployment, auto_challenge=True, **fields))


def _evaluate(version, capture):
    """Queues the evaluation as the registration would (the broker message is dropped: the test runs
    the worker's half itself) and executes it."""
    with capture(execute=False):
        (evaluation,) = candidate_evaluations_request(version=version)
    return candidate_evaluation_execute(evaluation_id=evaluation.pk)


def _serving(deployment):
    return sorted((r.model_version_id, r.weight) for r in deployment.versions.filter(weight__gt=0))


def test_the_demo_series_continues_from_its_last_close_on_the_next_business_days():
    df = pd.DataFrame(
        {
            "date": ["2024-01-04", "2024-01-05"] * 2,
            "ticker": ["A", "A", "B", "B"],
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": [10.0, 11.0, 50.0, 52.0],
            "volume": 100,
        }
    )
    out = next_days_frame(df, days=3, seed=1)
    a = out[out["ticker"] == "A"]
    assert list(a["date"]) == ["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10"]
    assert a.iloc[2]["open"] == pytest.approx(11.0, rel=1e-3) and len(out) == 10


def test_a_candidate_that_clears_the_margin_starts_a_rollout_as_challenger(series, django_capture_on_commit_callbacks):
    deployment, champion = series["deployment"], series["champion"]
    _policy(deployment, min_improvement=-1.0)
    candidate = train(series["experiment"], series["second"])
    evaluation = _evaluate(candidate, django_capture_on_commit_callbacks)

    assert evaluation.status == EvaluationStatus.PASSED and evaluation.action == EvaluationAction.ROLLOUT_STARTED
    assert (evaluation.champion, evaluation.dataset_version, evaluation.metric) == (
        champion,
        series["second"],
        "accuracy",
    )
    assert 0 <= evaluation.candidate_value <= 1 and 0 <= evaluation.champion_value <= 1
    assert (
        evaluation.candidate_metrics["accuracy"] == evaluation.candidate_value and "f1" in evaluation.champion_metrics
    )
    # Leak-free: every scored row is after the last day either model was fitted on, and after all of
    # the champion's data.
    window = evaluation.window
    assert window["after"] < window["start"] <= window["end"] and window["rows"] >= 20
    champion_data = dataset_version_dataframe(version=series["first"])
    assert pd.Timestamp(window["start"]) > pd.to_datetime(champion_data["date"]).max()
    assert any("fitted on rows up to" in line["message"] for line in evaluation.log)

    rollout = deployment_open_rollout(deployment=deployment)
    assert (rollout.challenger, rollout.champion, rollout.status) == (candidate, champion, RolloutStatus.RUNNING)
    events = list(rollout.events.order_by("created_at", "pk"))
    assert [e.kind for e in events] == ["rollout_created", "rollout_started"] and evaluation.rollout == rollout
    assert all(e.actor_label == "delivery policy" and f"evaluation {evaluation.pk}" in e.reason for e in events)
    assert model_aliases(model=candidate.registered_model) == {
        "champion": champion.version,
        "challenger": candidate.version,
    }


def test_a_candidate_short_of_the_margin_gets_no_traffic(series, django_capture_on_commit_callbacks):
    deployment, champion = series["deployment"], series["champion"]
    _policy(deployment, min_improvement=1.0)
    before = _serving(deployment)
    evaluation = _evaluate(train(series["experiment"], series["second"]), django_capture_on_commit_callbacks)
    assert evaluation.status == EvaluationStatus.REJECTED and "required +1.0000" in evaluation.reason
    assert evaluation.candidate_value is not None and evaluation.champion_value is not None
    assert not Rollout.objects.exists() and _serving(deployment) == before == [(champion.pk, 100.0)]


def test_an_evaluation_that_fails_leaves_the_champion_untouched_and_says_why(
    series, django_capture_on_commit_callbacks
):
    deployment, champion = series["deployment"], series["champion"]
    _policy(deployment, min_improvement=-1.0)
    candidate = train(series["experiment"], series["second"])
    candidate.artifact_sha256 = "0" * 64  # the artifact no longer matches the registry
    candidate.save(update_fields=["artifact_sha256"])
    evaluation = _evaluate(candidate, django_capture_on_commit_callbacks)
    assert evaluation.status == EvaluationStatus.FAILED and "ArtifactIntegrityError" in evaluation.reason
    assert evaluation.log[-1]["level"] == "ERROR"
    assert not Rollout.objects.exists() and _serving(deployment) == [(champion.pk, 100.0)]


def test_data_without_time_cannot_be_evaluated_leak_free(
    deployment, challenger, inline_runs, django_capture_on_commit_callbacks
):
    _policy(deployment)
    evaluation = _evaluate(challenger, django_capture_on_commit_callbacks)
    assert evaluation.status == EvaluationStatus.FAILED and "has no time column" in evaluation.reason
    assert not Rollout.objects.exists()


def test_policy_queue_waits_for_the_open_rollout_then_starts_the_newest(series, django_capture_on_commit_callbacks):
    deployment = series["deployment"]
    _policy(deployment, min_improvement=-1.0, when_rollout_open="queue")
    first, second, third = (train(series["experiment"], series["second"], alpha=a) for a in (1.0, 0.5, 0.25))
    started = _evaluate(first, django_capture_on_commit_callbacks)
    older, newest = (_evaluate(v, django_capture_on_commit_callbacks) for v in (second, third))
    older.refresh_from_db()
    assert (older.action, newest.action) == (EvaluationAction.SUPERSEDED, EvaluationAction.WAITING)
    assert deployment_open_rollout(deployment=deployment).challenger == first

    with django_capture_on_commit_callbacks(execute=True):
        rollout_transition(
            rollout=started.rollout,
            action=RolloutAction.ROLLBACK,
            actor_label="gate evaluator",
            expected_stage=0,
            reason="error rate gate failed",
        )
    newest.refresh_from_db()
    assert newest.action == EvaluationAction.ROLLOUT_STARTED
    assert deployment_open_rollout(deployment=deployment).challenger == third


def test_a_waiting_candidate_is_evaluated_again_when_the_champion_changed(series, django_capture_on_commit_callbacks):
    deployment = series["deployment"]
    _policy(deployment, min_improvement=-1.0, stages=[{"percent": 100}])
    first, second = (train(series["experiment"], series["second"], alpha=a) for a in (1.0, 0.5))
    started = _evaluate(first, django_capture_on_commit_callbacks)
    waiting = _evaluate(second, django_capture_on_commit_callbacks)
    assert waiting.action == EvaluationAction.WAITING, (waiting.status, waiting.reason, waiting.log)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        rollout_transition(
            rollout=started.rollout, action=RolloutAction.PROMOTE, actor_label="gate evaluator", expected_stage=0
        )
    assert callbacks
    waiting.refresh_from_db()
    assert waiting.action == EvaluationAction.REEVALUATED and deployment_open_rollout(deployment=deployment) is None
    again = CandidateEvaluation.objects.get(candidate=second, status=EvaluationStatus.QUEUED)
    assert "champion changed" in again.trigger


def test_policy_replace_swaps_a_candidate_that_has_not_passed_a_stage(series, django_capture_on_commit_callbacks):
    deployment = series["deployment"]
    _policy(
        deployment,
        min_improvement=-1.0,
        when_rollout_open="replace",
        stages=[{"percent": 10}, {"percent": 50}, {"percent": 100}],
    )
    first, second, third = (train(series["experiment"], series["second"], alpha=a) for a in (1.0, 0.5, 0.25))
    replaced = _evaluate(first, django_capture_on_commit_callbacks)
    _evaluate(second, django_capture_on_commit_callbacks)
    replaced.refresh_from_db()
    assert replaced.action == EvaluationAction.SUPERSEDED and replaced.rollout.status == RolloutStatus.ABORTED
    current = deployment_open_rollout(deployment=deployment)
    assert current.challenger == second
    # Once it has passed a stage it is no longer replaced: the next one waits.
    rollout_transition(rollout=current, action=RolloutAction.PROMOTE, actor_label="gate evaluator", expected_stage=0)
    assert _evaluate(third, django_capture_on_commit_callbacks).action == EvaluationAction.WAITING
    assert deployment_open_rollout(deployment=deployment).challenger == second


def test_only_the_same_message_redelivered_runs_a_started_evaluation_again(series, django_capture_on_commit_callbacks):
    from apps.delivery.services import _claim

    _policy(series["deployment"], min_improvement=1.0)
    with django_capture_on_commit_callbacks(execute=False):
        (evaluation,) = candidate_evaluations_request(version=train(series["experiment"], series["second"]))
    assert _claim(evaluation.pk, "message-1").status == EvaluationStatus.RUNNING  # then its worker died
    assert candidate_evaluation_execute(evaluation_id=evaluation.pk, celery_task_id="message-2") is None
    again = candidate_evaluation_execute(evaluation_id=evaluation.pk, celery_task_id="message-1")
    assert again.status == EvaluationStatus.REJECTED
    assert candidate_evaluation_execute(evaluation_id=evaluation.pk, celery_task_id="message-1") is None
