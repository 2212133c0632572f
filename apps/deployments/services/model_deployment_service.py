"""
==============================================================================
FILE: apps/deployments/services/model_deployment_service.py
ROLE: Public entry point of the deployments app: the one module views, admin actions, tasks,
      the demo and other apps call to deploy models, move traffic and serve predictions.
PURPOSE: Turn registered model versions into named prediction endpoints with weighted, sticky
         traffic splitting, staged rollouts decided by gates (error rate, p99 latency, and an
         always-valid sequential test of accuracy/RMSE on ground-truth feedback), one-action
         rollback, and a prediction path that logs every answer without slowing it down.
INTEGRATION POINTS:
    - apps.registry: ModelVersion / RegisteredModel, load_model_version (sha256-verified, no
      pickles) for serving, model_alias_set to move the `champion` alias on completion/rollback.
    - apps.datasets.preprocessing: each version's own FittedPreprocessor turns raw rows into
      features (InvalidInput, InsufficientHistory become 400s naming the field / rows needed).
    - apps.monitoring: prediction-log buffer (per process, written to PostgreSQL), feedback scoring, window
      metrics and drift used by the gates and the dashboard.
    - Redis: routing-table generation per deployment (web processes reload within ~0.5 s).
    - Channels: group "deployments", message {"type": "deployment.changed", "deployment": name}.
    - Celery beat: deployments.evaluate_rollouts (gates), monitoring.flush_prediction_logs.
FEATURES:
    - deployment_create / deployment_set_traffic / deployment_rollback (any earlier version).
    - rollout_create and rollout_transition: draft → running (stage k) → paused → completed |
      aborted | rolled back, under select_for_update, each change a DeploymentEvent with the
      metrics at that moment; concurrent promotes advance once.
    - rollout_evaluate: gates checked by the beat task; automatic advance, completion, rollback.
    - predict: MLflow scoring formats and Open Inference Protocol V2 (binary tensor data, a
      version by name outside the traffic split), routing keys, shadow copies.
    - feedback_record: ground truth by request id, scored per served (and shadow) version.
AUTHOR: AI Investor Team
==============================================================================
"""

from __future__ import annotations

from apps.monitoring.services.feedback import FeedbackResult
from apps.monitoring.services.feedback import feedback_record as _feedback_record

from ..choices import RolloutAction
from ..models import Deployment, Rollout
from ..serving.inputs import InputError
from ..serving.errors import PredictionFailed, PredictionInputError
from ..serving.predict import Prediction, predictor
from ..serving.state import DeploymentNotFound, ModelUnavailable
from .gates import GateReport, rollout_evaluate, rollout_gates_check, running_rollout_ids
from .rollouts import deployment_rollback, rollout_create, rollout_transition, validate_gates, validate_stages
from .traffic import TransitionConflict, deployment_create, deployment_set_traffic

__all__ = [
    "Deployment",
    "DeploymentNotFound",
    "FeedbackResult",
    "GateReport",
    "InputError",
    "ModelUnavailable",
    "Prediction",
    "PredictionFailed",
    "PredictionInputError",
    "Rollout",
    "RolloutAction",
    "TransitionConflict",
    "deployment_create",
    "deployment_rollback",
    "deployment_set_traffic",
    "feedback_record",
    "predict",
    "rollout_create",
    "rollout_evaluate",
    "rollout_gates_check",
    "rollout_transition",
    "rollouts_evaluate_all",
    "validate_gates",
    "validate_stages",
]


def predict(
    *,
    deployment: str,
    body: dict,
    raw_body: bytes,
    protocol: str = "mlflow",
    routing_key: str | None = None,
    started: float | None = None,
    served_at: float | None = None,
    version: str | None = None,
) -> Prediction:
    """Serves one prediction request of `deployment` (by name).

    Raises DeploymentNotFound, ModelUnavailable (no loadable version), PredictionInputError (bad
    input, `field` names it; `needed_rows` when history was short) or PredictionFailed (the model
    raised on valid input). Every outcome after routing is logged against the chosen version.
    `version` (a version number, as answered in `model_version`) serves that version outside the
    traffic split (V2 `/versions/<v>/infer`); VersionNotServed when the deployment does not serve it.
    """
    return predictor.predict(
        deployment=deployment,
        body=body,
        protocol=protocol,
        raw_body=raw_body,
        routing_key=routing_key,
        started=started,
        served_at=served_at,
        version=version,
    )


def feedback_record(*, deployment: Deployment, items: list, user=None) -> FeedbackResult:
    """Ground truth for earlier requests (see apps.monitoring.services.feedback.feedback_record)."""
    return _feedback_record(deployment=deployment, items=items, user=user)


def rollouts_evaluate_all() -> dict[int, str]:
    """Evaluates every running rollout's gates (the beat task); {rollout id: action taken}."""
    from apps.monitoring.services.logbuffer import prediction_logs_flush

    # Gates judge what was served up to now, including answers still in the buffer.
    prediction_logs_flush()
    results = {}
    for rollout_id in running_rollout_ids():
        report = rollout_evaluate(rollout_id=rollout_id)
        if report is not None:
            results[rollout_id] = report.action
    return results
