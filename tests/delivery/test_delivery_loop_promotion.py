"""The whole loop on the real worker, Redis and PostgreSQL, with nobody acting as staff after the
data upload: new data → training run → candidate evaluation → rollout as challenger → feedback from
a prediction client → promoted to 100% → aliases moved → timeline complete. And its mirror: a
candidate that does not clear the offline margin never gets traffic, and the champion answers every
request meanwhile."""

import time

import pytest
from django.db import transaction

from apps.datasets.selectors import dataset_version_dataframe
from apps.delivery.choices import EvaluationAction, EvaluationStatus
from apps.delivery.models import CandidateEvaluation, DeliveryPolicy
from apps.delivery.selectors import delivery_timeline
from apps.delivery.services import delivery_policy_save
from apps.deployments.choices import RolloutStatus
from apps.deployments.models import DeploymentEvent, Rollout
from apps.deployments.services.model_deployment_service import deployment_create
from apps.deployments.tasks import evaluate_rollouts
from apps.monitoring.choices import PredictionStatus
from apps.monitoring.models import Feedback
from apps.monitoring.services.logbuffer import prediction_logs_flush
from apps.registry.loading import load_model_version
from apps.registry.models import AliasEvent
from apps.registry.selectors import model_aliases
from tests.deployments.conftest import _fresh_serving_state  # noqa: F401  (a cold serving cache per test)
from tests.training import factories
from tests.training.waiting import wait_for

from .conftest import next_days, train

pytestmark = pytest.mark.worker

PREDICT = "/api/v1/deployments/prices/predict"
FEEDBACK = "/api/v1/deployments/prices/feedback"
# Short stages and gates, so that the traffic of a test can promote a candidate.
STAGES = [
    {"percent": 50, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 20},
    {"percent": 100, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
]
GATES = {"min_feedback_per_arm": 20, "min_requests_for_health": 3, "max_p99_ms": 10_000, "max_error_rate": 0.2}
REQUESTS_PER_ROUND = 20


def _served(price_data, staff_user, *, champion_params: dict):
    """Staff's set-up: an experiment that retrains on new data, its champion, the deployment."""
    dataset, first, spec = price_data
    experiment = factories.experiment(
        dataset=dataset,
        spec=spec,
        name="direction",
        registered_model_name="prices",
        retrain_on_new_data=True,
        user=staff_user,
    )
    champion = train(experiment, first, **champion_params)
    deployment = deployment_create(name="prices", model_version=champion, user=staff_user)
    return champion, deployment


def _request_windows(frame, history: int):
    """Every ticker's last `history` rows up to each day of the series, day after day, round and round."""
    days = sorted(frame["date"].astype(str).unique())[history:]
    while True:
        for day in days:
            yield frame[frame["date"].astype(str) <= day].groupby("ticker").tail(history)


def _records(rows, columns) -> list[dict]:
    return rows[columns].astype(object).where(rows[columns].notna(), None).to_dict("records")


def _gates_on_the_worker() -> dict:
    """The beat task's tick, run on the worker: the test process first stores what it served."""
    prediction_logs_flush()
    return evaluate_rollouts.apply_async(ignore_result=False).get(timeout=60)


def test_new_data_reaches_full_traffic_and_the_aliases_move_with_only_a_prediction_client_acting(
    celery_worker, price_data, staff_user, client_api, client_user, analyst_api
):
    # Staff's set-up, all before the upload: a champion kept weak on purpose (heavily regularised, so
    # it mostly answers one class) and a policy that challenges every new version automatically.
    champion, deployment = _served(price_data, staff_user, champion_params={"alpha": 1e4})
    delivery_policy_save(
        policy=DeliveryPolicy(
            deployment=deployment, auto_challenge=True, min_improvement=-1.0, stages=STAGES, gates=GATES
        ),
        user=staff_user,
    )

    # The data upload, the last thing staff do. Everything after: the worker and a prediction client.
    with transaction.atomic():
        second = next_days(dataset=price_data[0], days=40, user=staff_user)
    rollout = wait_for(
        lambda: Rollout.objects.filter(deployment=deployment).select_related("challenger").first(),
        timeout=120,
        what="the delivery policy to start a rollout of the retrained version",
    )
    candidate = rollout.challenger
    assert candidate.dataset_version == second and candidate.training_run.origin == "dataset"
    assert rollout.status == RolloutStatus.RUNNING and rollout.current_percent == 50

    frame = dataset_version_dataframe(version=second)
    columns = candidate.signature["raw_columns"]
    judge = load_model_version(candidate)  # the client's ground truth agrees with the candidate
    windows = _request_windows(frame, candidate.history_rows)
    served, rounds = [], 0
    deadline = time.monotonic() + 90
    while rollout.status == RolloutStatus.RUNNING:
        assert time.monotonic() < deadline, (
            f"the rollout did not complete within 90 s ({rounds} rounds of feedback); gates: {rollout.gate_status}"
        )
        feedback = []
        for rows in (next(windows) for _ in range(REQUESTS_PER_ROUND)):
            answer = client_api.post(PREDICT, {"dataframe_records": _records(rows, columns)}, format="json")
            assert answer.status_code == 200, answer.content
            body = answer.json()
            served.append(body["model_version"])
            truth, _ = judge.predict_raw(rows)
            feedback.append({"request_id": body["request_id"], "ground_truth": list(truth)})
        prediction_logs_flush()
        answer = client_api.post(FEEDBACK, {"feedback": feedback}, format="json")
        assert answer.status_code == 200, answer.content
        assert answer.json()["answers_scored"] == REQUESTS_PER_ROUND
        _gates_on_the_worker()
        rounds += 1
        rollout.refresh_from_db()

    assert rollout.status == RolloutStatus.COMPLETED, rollout.gate_status
    assert rollout.current_percent == 100 and rollout.stage_index == len(STAGES) - 1
    assert {str(champion.version), str(candidate.version)} <= set(served), "both versions served during the rollout"
    assert served[-1] == str(candidate.version)

    # The registry follows: the candidate is the champion and nothing is left challenging.
    model = candidate.registered_model
    assert model_aliases(model=model) == {"champion": candidate.version}
    moves = list(AliasEvent.objects.filter(registered_model=model, rollout_id=rollout.pk).order_by("created_at", "pk"))
    assert [(e.alias, e.to_version_id) for e in moves if e.from_version_id != e.to_version_id][-3:] == [
        ("challenger", candidate.pk),
        ("champion", candidate.pk),
        ("challenger", None),
    ]
    assert all(f"rollout {rollout.pk}" in e.reason for e in moves)

    # Nobody acted as staff after the upload: the policy and the gates moved the rollout, and the
    # only person-made rows are the prediction client's feedback.
    uploaded = second.created_at
    events = DeploymentEvent.objects.filter(deployment=deployment, created_at__gte=uploaded)
    assert events.exists() and not events.filter(actor__isnull=False).exists()
    assert set(events.values_list("actor_label", flat=True)) == {"delivery policy", "gate-evaluator"}
    assert not AliasEvent.objects.filter(registered_model=model, created_at__gte=uploaded, actor__isnull=False).exists()
    assert Feedback.objects.filter(deployment=deployment).count() == REQUESTS_PER_ROUND * rounds

    # One timeline, read as an analyst: upload → run → evaluation → rollout stages → promotion.
    (chain,) = [c for c in delivery_timeline(deployment=deployment) if c["model_version_id"] == candidate.pk]
    steps = chain["steps"]
    kinds = [s["step"] for s in steps]
    assert chain["outcome"] == RolloutStatus.COMPLETED
    assert kinds[0] == "dataset_version" and steps[0]["dataset_version_id"] == second.pk
    assert steps[0]["actor"] == staff_user.username
    first_of = {kind: kinds.index(kind) for kind in kinds}
    assert (
        first_of["dataset_version"]
        < first_of["training_run"]
        < first_of["model_version"]
        < first_of["evaluation"]
        < first_of["rollout"]
    ), kinds
    (evaluation_step,) = [s for s in steps if s["step"] == "evaluation"]
    assert evaluation_step["what"].endswith("passed → rollout started")
    rollout_steps = [s["what"] for s in steps if s["step"] == "rollout"]
    assert any("started" in w for w in rollout_steps) and any("stage advanced" in w for w in rollout_steps)
    assert rollout_steps[-1] == f"rollout {rollout.pk}: rollout completed (stage {len(STAGES)})"
    completed = [s for s in steps if s["step"] == "rollout" and s["what"] == rollout_steps[-1]]
    assert completed[0]["actor"] == "gate-evaluator"
    assert [s["what"] for s in steps if s["step"] == "alias"][-2:] == [
        f"@champion: v{champion.version} → v{candidate.version}",
        f"@challenger: v{candidate.version} → -",
    ]
    assert kinds.index("alias") > first_of["rollout"]
    position = {s["what"]: i for i, s in enumerate(steps)}
    assert position[f"@champion: v{champion.version} → v{candidate.version}"] > position[rollout_steps[-1]], (
        "the champion moves after the rollout completed, not before"
    )

    answer = analyst_api.get("/api/v1/delivery/deployments/prices/timeline")
    assert answer.status_code == 200
    assert answer.json()[0]["candidate"] == str(candidate) and answer.json()[0]["outcome"] == "completed"
    evaluation = CandidateEvaluation.objects.get(candidate=candidate)
    assert (evaluation.status, evaluation.action, evaluation.rollout_id) == (
        EvaluationStatus.PASSED,
        EvaluationAction.ROLLOUT_STARTED,
        rollout.pk,
    )


def test_a_worse_candidate_is_stopped_and_the_champion_serves_every_request_meanwhile(
    celery_worker, price_data, staff_user, client_api
):
    # The policy wants a candidate 25 points of accuracy better than the champion offline. On a
    # random-walk series no retrain is, so the candidate falls short of the margin and the evaluation
    # on the worker must stop it before it gets any traffic.
    champion, deployment = _served(price_data, staff_user, champion_params={})
    delivery_policy_save(
        policy=DeliveryPolicy(
            deployment=deployment,
            auto_challenge=True,
            metric="accuracy",
            min_improvement=0.25,
            stages=STAGES,
            gates=GATES,
        ),
        user=staff_user,
    )
    aliases_before = model_aliases(model=champion.registered_model)
    traffic_before = sorted(deployment.versions.values_list("model_version_id", "weight", "role"))

    with transaction.atomic():
        second = next_days(dataset=price_data[0], days=40, user=staff_user)

    frame = dataset_version_dataframe(version=second)
    columns = champion.signature["raw_columns"]
    windows = _request_windows(frame, champion.history_rows)

    def predict_once() -> None:
        answer = client_api.post(PREDICT, {"dataframe_records": _records(next(windows), columns)}, format="json")
        assert answer.status_code == 200, answer.content
        assert answer.json()["model_version"] == str(champion.version), answer.json()
        served.append(answer.json()["request_id"])

    def verdict():
        """One more request answered by the champion, then: has the evaluation finished?"""
        predict_once()
        return (
            CandidateEvaluation.objects.filter(policy__deployment=deployment)
            .exclude(status__in=(EvaluationStatus.QUEUED, EvaluationStatus.RUNNING))
            .select_related("candidate")
            .first()
        )

    served = []
    evaluation = wait_for(
        verdict,
        timeout=120,
        interval=0.2,
        what="the retrained candidate's evaluation to finish while the champion serves",
    )
    for _ in range(5):  # and after the verdict
        predict_once()

    candidate = evaluation.candidate
    assert candidate.dataset_version == second and candidate.training_run.origin == "dataset"
    assert evaluation.status == EvaluationStatus.REJECTED, (evaluation.status, evaluation.reason)
    assert evaluation.action == EvaluationAction.NONE and evaluation.rollout_id is None
    assert evaluation.champion == champion and evaluation.dataset_version == second
    assert evaluation.improvement < 0.25
    assert "accuracy" in evaluation.reason and "required +0.2500" in evaluation.reason
    assert evaluation.celery_task_id and any(line["message"].startswith("rejected:") for line in evaluation.log)

    assert not Rollout.objects.filter(deployment=deployment).exists()
    assert model_aliases(model=champion.registered_model) == aliases_before
    assert sorted(deployment.versions.values_list("model_version_id", "weight", "role")) == traffic_before
    # Every answer of the wait was the champion's, none failed, and all of them were logged as such.
    prediction_logs_flush()
    logged = deployment.prediction_logs.filter(request_id__in=served)
    assert len(served) > 5 and logged.count() == len(served)
    assert set(logged.values_list("model_version_id", "status")) == {(champion.pk, PredictionStatus.OK)}

    (chain,) = delivery_timeline(deployment=deployment)
    assert chain["outcome"] == EvaluationStatus.REJECTED
    assert [s["step"] for s in chain["steps"]][-1] == "evaluation"
    assert not [s for s in chain["steps"] if s["step"] in ("rollout", "alias")]
