"""Reads for the dashboard: one summary composed from the other apps' selectors and models, and the
single items the dashboard's WebSocket pushes when something changes.

Every function returns plain JSON-ready dicts in the shapes documented in apps/CONTRACTS.md
("dashboard"); the frontend (frontend2/src/lib/summary.js) reads exactly these.
"""

from __future__ import annotations

from django.db.models import Count, Q
from django.utils import timezone

RECENT_RUNS = 20
ACTIVE_RUNS_MAX = 50
EVENTS_PER_DEPLOYMENT = 5
DASHBOARD_ACTIONS = ("promote", "pause", "resume", "rollback")


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _version_label(model_version, model_name: str | None = None) -> str:
    name = model_name if model_name is not None else model_version.registered_model.name
    return f"{name} v{model_version.version}"


def _deployment_status(rollout) -> str:
    from apps.deployments.choices import RolloutStatus

    if rollout is None or not rollout.is_open:
        return "serving"
    return {RolloutStatus.RUNNING: "rolling_out", RolloutStatus.PAUSED: "paused"}.get(rollout.status, "draft_rollout")


def _rollout_summary(rollout, labels: dict[int, str]) -> dict | None:
    from apps.deployments.choices import GateState
    from apps.deployments.services.gates import gate_label

    if rollout is None:
        return None
    gate_status = rollout.gate_status or {}
    # Gates describe the stage they were evaluated for; after a stage change they are stale.
    current = gate_status.get("stage_index") == rollout.stage_index and rollout.is_open
    gates = [
        {
            "name": gate.get("name", ""),
            "label": gate_label(gate),
            # Anything but a decided pass or fail reads as pending: an unknown state is no verdict.
            "state": gate.get("state") if gate.get("state") in GateState.values else GateState.PENDING.value,
            "value": _number(gate.get("value")),
            "threshold": _number(gate.get("threshold")),
            "detail": gate.get("detail", ""),
        }
        for gate in (gate_status.get("gates") or [] if current else [])
    ]
    stage = rollout.current_stage
    return {
        "id": rollout.pk,
        "status": rollout.status,
        "stage_index": rollout.stage_index,
        "stage": stage["percent"] if stage else None,
        "stages": [s["percent"] for s in rollout.stages],
        "champion": labels.get(rollout.champion_id) or _version_label(rollout.champion),
        "challenger": labels.get(rollout.challenger_id) or _version_label(rollout.challenger),
        "started_at": _iso(rollout.started_at),
        "stage_started_at": _iso(rollout.stage_started_at),
        "evaluated_at": _iso(rollout.evaluated_at) if current else None,
        "decision": gate_status.get("action") if current else None,
        "decision_reason": gate_status.get("reason", "") if current else "",
        "gates": gates,
    }


def _allowed_actions(rollout) -> dict[str, bool]:
    from apps.deployments.choices import RolloutAction
    from apps.deployments.services.rollouts import ALLOWED_FROM

    return {
        action: rollout is not None and rollout.status in ALLOWED_FROM[RolloutAction(action)]
        for action in DASHBOARD_ACTIONS
    }


def _deployment_summary(deployment) -> dict:
    from apps.deployments import selectors as deployments

    model_name = deployment.registered_model.name
    serving = deployments.deployment_serving_versions(deployment=deployment)
    labels = {}
    versions = []
    for row in serving:
        mv = row.model_version
        label = _version_label(mv, model_name if mv.registered_model_id == deployment.registered_model_id else None)
        labels[mv.pk] = label
        versions.append(
            {
                "id": row.pk,
                "model_version_id": mv.pk,
                "label": label,
                "version": mv.version,
                "role": row.role,
                "weight": row.weight,
                "shadow": row.shadow,
                "framework": mv.framework,
                "model_type": mv.model_type,
                "task": mv.task,
            }
        )
    rollout = deployments.deployment_open_rollout(deployment=deployment)
    if rollout is None:
        rollout = deployments.deployment_latest_rollout(deployment=deployment)
    events = deployments.deployment_events(deployment=deployment, limit=EVENTS_PER_DEPLOYMENT)
    return {
        "name": deployment.name,
        "description": deployment.description,
        "registered_model": model_name,
        "active": bool(versions) or bool(rollout and rollout.is_open),
        "status": _deployment_status(rollout),
        "generation": deployment.generation,
        "updated_at": _iso(deployment.updated_at),
        "versions": versions,
        "rollout": _rollout_summary(rollout, labels),
        "events": [
            {
                "id": e.pk,
                "kind": e.kind,
                "label": e.get_kind_display(),
                "reason": e.reason,
                "actor": e.actor_label,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "created_at": _iso(e.created_at),
            }
            for e in events
        ],
        "actions": _allowed_actions(rollout if rollout is not None and rollout.is_open else None),
    }


def deployment_summaries() -> list[dict]:
    """Deployments that serve something or have an open rollout, by name."""
    from apps.deployments.selectors import deployment_list

    summaries = [_deployment_summary(d) for d in deployment_list().order_by("name")]
    return [s for s in summaries if s["active"]]


def deployment_summary(*, name: str) -> dict | None:
    """One deployment as in the summary (with `active`), or None when it does not exist."""
    from apps.deployments.selectors import deployment_get

    deployment = deployment_get(name=name)
    return None if deployment is None else _deployment_summary(deployment)


def _run_summary(run, metrics: dict | None = None) -> dict:
    return {
        "id": run.pk,
        "experiment": run.experiment.name,
        "experiment_id": run.experiment_id,
        "framework": run.framework,
        "model_type": run.model_type,
        "device": run.device,
        "status": run.status,
        "origin": run.origin,
        "trial_id": run.trial_id,
        "attempt": run.attempts,
        "epoch": run.current_epoch or None,
        "total_epochs": run.total_epochs or None,
        "percent": run.progress,
        "eta_seconds": run.eta_seconds,
        "metrics": metrics or {},
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def _with_latest_metrics(queryset):
    """Annotates each run with the metrics of its latest epoch (latest attempt), in the same query."""
    from django.db.models import OuterRef, Subquery

    from apps.training.models import RunEpoch

    latest = RunEpoch.objects.filter(run=OuterRef("pk")).order_by("-attempt", "-epoch").values("metrics")[:1]
    return queryset.annotate(latest_metrics=Subquery(latest))


def run_summaries(*, active: bool) -> list[dict]:
    """Queued and running runs with their progress and latest epoch metrics (active=True), or the
    most recent runs of any status (active=False), newest first."""
    from apps.training.selectors import run_list

    if active:
        return [
            _run_summary(r, r.latest_metrics) for r in _with_latest_metrics(run_list(active=True))[:ACTIVE_RUNS_MAX]
        ]
    return [_run_summary(r) for r in run_list()[:RECENT_RUNS]]


def run_summary(*, run_id: int) -> dict | None:
    from apps.training.selectors import run_list

    run = _with_latest_metrics(run_list().filter(pk=run_id)).first()
    return None if run is None else _run_summary(run, run.latest_metrics)


def _study_summary(study) -> dict:
    from apps.tuning.choices import Direction, TrialStatus

    values = [t for t in study.trials.all() if t.status == TrialStatus.COMPLETED and t.value is not None]
    pick = max if study.direction == Direction.MAXIMIZE else min
    best = pick(values, key=lambda t: t.value) if values else None
    return {
        "id": study.pk,
        "name": study.name,
        "framework": study.framework,
        "model_type": study.model_type,
        "strategy": study.strategy,
        "status": study.status,
        "metric": study.objective_metric,
        "direction": study.direction,
        "n_trials": study.max_trials,
        "completed_trials": study.finished_trials,
        "running_trials": study.running_trials,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "started_at": _iso(study.started_at),
    }


def _studies():
    from django.db.models import Prefetch

    from apps.tuning.choices import TRIAL_TERMINAL, TrialStatus
    from apps.tuning.models import Trial, TuningStudy

    return TuningStudy.objects.annotate(
        finished_trials=Count("trials", filter=Q(trials__status__in=list(TRIAL_TERMINAL))),
        running_trials=Count("trials", filter=Q(trials__status=TrialStatus.RUNNING)),
    ).prefetch_related(Prefetch("trials", queryset=Trial.objects.only("id", "study_id", "number", "status", "value")))


def study_summaries() -> list[dict]:
    """Running and paused tuning studies, newest first."""
    from apps.tuning.choices import StudyStatus

    studies = _studies().filter(status__in=[StudyStatus.RUNNING, StudyStatus.PAUSED]).order_by("-created_at")
    return [_study_summary(s) for s in studies]


def study_summary(*, study_id: int) -> dict | None:
    study = _studies().filter(pk=study_id).first()
    return None if study is None else _study_summary(study)


def dashboard_summary() -> dict:
    """Everything the dashboard shows on load; later changes arrive on ws/dashboard/."""
    return {
        "generated_at": _iso(timezone.now()),
        "deployments": deployment_summaries(),
        "runs": run_summaries(active=True),
        "recent_runs": run_summaries(active=False),
        "studies": study_summaries(),
    }


def study_summary_for_trial(*, trial_id: int) -> dict | None:
    from apps.tuning.models import Trial

    study_id = Trial.objects.filter(pk=trial_id).values_list("study_id", flat=True).first()
    return None if study_id is None else study_summary(study_id=study_id)
