"""After the offline guard, the live gates move the candidate: feedback that favours it promotes it
to 100%, the aliases follow and the timeline tells the whole story."""

import numpy as np

from apps.datasets.selectors import dataset_version_dataframe
from apps.delivery.models import DeliveryPolicy
from apps.delivery.selectors import delivery_timeline
from apps.delivery.services import candidate_evaluation_execute, candidate_evaluations_request, delivery_policy_save
from apps.deployments.choices import RolloutStatus
from apps.deployments.services.model_deployment_service import rollouts_evaluate_all
from apps.registry.loading import load_model_version
from apps.registry.selectors import model_aliases
from tests.deployments.conftest import _fresh_serving_state  # noqa: F401  (predictions are served in-process)

from .conftest import train

PREDICT = "/api/v1/deployments/prices/predict"
FEEDBACK = "/api/v1/deployments/prices/feedback"
STAGES = [
    {"percent": 50, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 20},
    {"percent": 100, "min_duration_s": 0, "min_predictions": 3, "min_feedback": 0},
]
GATES = {"min_feedback_per_arm": 20, "min_requests_for_health": 3, "max_p99_ms": 10_000, "max_error_rate": 0.2}


def _requests(frame, history: int, count: int, offset: int):
    """`count` requests, each every ticker's last `history` rows up to one day of the series."""
    days = sorted(frame["date"].astype(str).unique())[history:]
    for day in days[offset : offset + count]:
        rows = frame[frame["date"].astype(str) <= day].groupby("ticker").tail(history)
        yield rows


def test_feedback_that_favours_the_candidate_promotes_it_to_100_percent(
    series, analyst_api, staff_api, django_capture_on_commit_callbacks
):
    deployment, champion = series["deployment"], series["champion"]
    delivery_policy_save(
        policy=DeliveryPolicy(
            deployment=deployment, auto_challenge=True, min_improvement=-1.0, stages=STAGES, gates=GATES
        )
    )
    candidate = train(series["experiment"], series["second"], alpha=0.2)
    with django_capture_on_commit_callbacks(execute=False):
        (evaluation,) = candidate_evaluations_request(version=candidate)
    # No worker here: the test runs the worker's half itself (and the rollout's routing callbacks).
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = candidate_evaluation_execute(evaluation_id=evaluation.pk)
    rollout = evaluation.rollout
    assert rollout.status == RolloutStatus.RUNNING

    frame = dataset_version_dataframe(version=series["second"])
    columns = candidate.signature["raw_columns"]
    judge = load_model_version(candidate)  # the labelling client agrees with the candidate
    served = []
    for round_ in range(6):
        feedback = []
        with django_capture_on_commit_callbacks(execute=True):
            for rows in _requests(frame, candidate.history_rows, 25, offset=25 * round_):
                records = rows[columns].astype(object).where(rows[columns].notna(), None).to_dict("records")
                answer = analyst_api.post(PREDICT, {"dataframe_records": records}, format="json")
                assert answer.status_code == 200, answer.content
                body = answer.json()
                served.append(body["model_version"])
                truth, _ = judge.predict_raw(rows)
                feedback.append({"request_id": body["request_id"], "ground_truth": list(truth)})
            assert staff_api.post(FEEDBACK, {"feedback": feedback}, format="json").status_code == 200
            rollouts_evaluate_all()
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            break
    assert rollout.status == RolloutStatus.COMPLETED, rollout.gate_status
    assert set(served) == {str(champion.version), str(candidate.version)}, "the champion served throughout"
    assert model_aliases(model=candidate.registered_model) == {"champion": candidate.version}

    (chain,) = delivery_timeline(deployment=deployment)
    done = [s for s in chain["steps"] if s["step"] == "rollout" and "completed" in s["what"]]
    assert chain["outcome"] == RolloutStatus.COMPLETED and done and done[0]["actor"] == "gate-evaluator"
    assert [s["what"] for s in chain["steps"] if s["step"] == "alias"][-2:] == [
        f"@champion: v{champion.version} → v{candidate.version}",
        f"@challenger: v{candidate.version} → -",
    ]
    assert np.all(np.diff([np.datetime64(s["at"][:26]) for s in chain["steps"]]) >= np.timedelta64(0))
