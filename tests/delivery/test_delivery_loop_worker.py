"""The loop on the real worker, Redis and PostgreSQL: new data → run → evaluation → rollout."""

import pytest
from django.db import transaction

from apps.delivery.choices import EvaluationAction, EvaluationStatus
from apps.delivery.models import CandidateEvaluation, DeliveryPolicy
from apps.delivery.selectors import delivery_timeline
from apps.delivery.services import candidate_evaluations_request, delivery_policy_save
from apps.deployments.models import Rollout
from apps.deployments.services.model_deployment_service import deployment_create
from apps.registry.selectors import model_aliases
from tests.training import factories
from tests.training.waiting import wait_for

from .conftest import next_days, train

pytestmark = pytest.mark.worker


def _served(price_data, staff_user, **experiment_fields):
    dataset, first, spec = price_data
    experiment = factories.experiment(
        dataset=dataset, spec=spec, name="direction", registered_model_name="prices", **experiment_fields
    )
    champion = train(experiment, first)
    deployment = deployment_create(name="prices", model_version=champion, user=staff_user)
    return experiment, champion, deployment


def test_a_new_dataset_version_reaches_the_deployment_as_challenger_with_nobody_acting(
    celery_worker, price_data, staff_user, analyst_api
):
    experiment, champion, deployment = _served(price_data, staff_user, retrain_on_new_data=True)
    delivery_policy_save(policy=DeliveryPolicy(deployment=deployment, auto_challenge=True, min_improvement=-1.0))

    # The only act: new data arrives. Everything after runs on the worker.
    with transaction.atomic():
        second = next_days(dataset=price_data[0], days=40)
    rollout = wait_for(
        lambda: Rollout.objects.filter(deployment=deployment).first(),
        timeout=120,
        what="the delivery policy to start a rollout",
    )
    candidate = rollout.challenger
    assert candidate.dataset_version == second and candidate.training_run.origin == "dataset"
    evaluation = CandidateEvaluation.objects.get(candidate=candidate)
    assert (evaluation.status, evaluation.action, evaluation.champion) == (
        EvaluationStatus.PASSED,
        EvaluationAction.ROLLOUT_STARTED,
        champion,
    )
    assert evaluation.celery_task_id and evaluation.log
    assert model_aliases(model=candidate.registered_model)["challenger"] == candidate.version

    (chain,) = delivery_timeline(deployment=deployment)
    steps = [s["step"] for s in chain["steps"]]
    for step in ("dataset_version", "training_run", "model_version", "evaluation", "rollout", "alias"):
        assert step in steps, steps
    assert steps.index("evaluation") < steps.index("rollout")
    assert {s["actor"] for s in chain["steps"] if s["step"] == "rollout"} == {"delivery policy"}

    answer = analyst_api.get("/api/v1/delivery/deployments/prices/timeline")
    assert answer.status_code == 200 and answer.json()[0]["candidate"] == str(candidate)
    detail = analyst_api.get(f"/api/v1/delivery/evaluations/{evaluation.pk}/").json()
    assert detail["status"] == "passed" and detail["rollout"] == rollout.pk and detail["log"]


def test_two_candidates_evaluated_together_start_one_rollout(celery_worker, price_data, staff_user):
    experiment, champion, deployment = _served(price_data, staff_user)
    second = next_days(dataset=price_data[0], days=40)
    candidates = [train(experiment, second, alpha=a) for a in (1.0, 0.5)]
    policy = delivery_policy_save(
        policy=DeliveryPolicy(deployment=deployment, auto_challenge=True, min_improvement=-1.0)
    )
    with transaction.atomic():
        evaluations = [e for c in candidates for e in candidate_evaluations_request(version=c)]
    assert len(evaluations) == 2

    def finished():
        rows = list(CandidateEvaluation.objects.filter(policy=policy))
        return rows if all(r.status == EvaluationStatus.PASSED and r.action for r in rows) else None

    rows = wait_for(finished, timeout=90, what="both evaluations to finish")
    assert sorted(r.action for r in rows) == [EvaluationAction.ROLLOUT_STARTED, EvaluationAction.WAITING]
    assert Rollout.objects.filter(deployment=deployment).count() == 1
