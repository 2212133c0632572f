"""The rollout state machine.

    draft ──start──► running (stage k) ──promote──► running (stage k+1) … ──promote at last──► completed
                        │  ▲
                   pause│  │resume                  running|paused ──rollback──► rolled_back
                        ▼  │                        draft|running|paused ──abort──► aborted
                      paused

`rollout_transition` is the only writer of a rollout's status and stage; `deployment_rollback`
(the whole deployment back to any version) ends an open rollout through it. It locks the deployment
row, then the rollout row (`select_for_update`), checks the move is allowed from the state it finds
(and, for promote/rollback, that the stage is still the one the caller saw: two staff pressing
promote at once advance it once, the second gets a conflict), sets the weights, and writes a
DeploymentEvent with who or what acted, why, and the metrics at that moment.
"""

from __future__ import annotations

import math
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..choices import EventKind, RolloutAction, RolloutStatus, VersionRole
from ..models import Deployment, DeploymentVersion, Rollout, default_gates, default_stages
from ..notify import after_commit
from .traffic import (
    TransitionConflict,
    actor_label_of,
    apply_traffic,
    champion_alias_move,
    check_version_fits,
    lock_deployment,
    metrics_snapshot,
    open_rollout,
    record_event,
    routing_changed,
)

ALLOWED_FROM = {
    RolloutAction.START: {RolloutStatus.DRAFT},
    RolloutAction.PROMOTE: {RolloutStatus.RUNNING, RolloutStatus.PAUSED},
    RolloutAction.PAUSE: {RolloutStatus.RUNNING},
    RolloutAction.RESUME: {RolloutStatus.PAUSED},
    RolloutAction.ABORT: {RolloutStatus.DRAFT, RolloutStatus.RUNNING, RolloutStatus.PAUSED},
    RolloutAction.ROLLBACK: {RolloutStatus.RUNNING, RolloutStatus.PAUSED},
}
STAGE_KEYS = {"percent", "min_duration_s", "min_predictions", "min_feedback"}
GATE_KEYS = {
    "max_error_rate": (0.0, 1.0),
    "max_p99_ms": (0.0, None),
    "alpha": (1e-6, 0.5),
    "tau": (1e-3, 10.0),
    "min_feedback_per_arm": (1, None),
    "min_requests_for_health": (1, None),
    "max_stage_duration_s": (0, None),
}


def validate_stages(stages) -> list[dict]:
    """Stages as stored: increasing percentages ending at 100, non-negative minimums."""
    if stages is None:
        return default_stages()
    if not isinstance(stages, list) or not stages:
        raise ValidationError({"stages": "expected a non-empty array of stages"})
    out, previous = [], 0.0
    for i, stage in enumerate(stages):
        field = f"stages[{i}]"
        if not isinstance(stage, dict):
            raise ValidationError(
                {field: "expected an object {percent, min_duration_s, min_predictions, min_feedback}"}
            )
        unknown = set(stage) - STAGE_KEYS
        if unknown:
            raise ValidationError({f"{field}.{sorted(unknown)[0]}": "unknown key"})
        percent = stage.get("percent")
        if (
            isinstance(percent, bool)
            or not isinstance(percent, (int, float))
            or not math.isfinite(percent)
            or not 0 < percent <= 100
        ):
            raise ValidationError({f"{field}.percent": "a percentage above 0 and at most 100"})
        if percent <= previous:
            raise ValidationError({f"{field}.percent": f"must be above the previous stage's {previous:g}"})
        clean = {"percent": float(percent)}
        for key in ("min_duration_s", "min_predictions", "min_feedback"):
            value = stage.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValidationError({f"{field}.{key}": "a number of at least 0"})
            clean[key] = int(value) if key != "min_duration_s" else float(value)
        out.append(clean)
        previous = percent
    if out[-1]["percent"] != 100:
        raise ValidationError({"stages": "the last stage must send 100% of traffic to the challenger"})
    return out


def validate_gates(gates) -> dict:
    merged = default_gates()
    if gates is None:
        return merged
    if not isinstance(gates, dict):
        raise ValidationError({"gates": "expected an object"})
    for key, value in gates.items():
        if key == "require_superiority":
            if not isinstance(value, bool):
                raise ValidationError({f"gates.{key}": "true or false"})
            merged[key] = value
            continue
        if key not in GATE_KEYS:
            raise ValidationError(
                {
                    f"gates.{key}": f"unknown gate setting; known: {', '.join(sorted([*GATE_KEYS, 'require_superiority']))}"
                }
            )
        low, high = GATE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationError({f"gates.{key}": "expected a number"})
        if value < low or (high is not None and value > high):
            raise ValidationError(
                {
                    f"gates.{key}": f"must be between {low:g} and {high:g}"
                    if high is not None
                    else f"must be at least {low:g}"
                }
            )
        merged[key] = value
    return merged


def _current_champion(deployment) -> DeploymentVersion:
    rows = list(
        DeploymentVersion.objects.filter(deployment=deployment, shadow=False, weight__gt=0).select_related(
            "model_version"
        )
    )
    if not rows:
        raise ValidationError({"deployment": f"{deployment.name} serves no version"})
    champions = [r for r in rows if r.role == VersionRole.CHAMPION] or rows
    return max(champions, key=lambda r: r.weight)


@transaction.atomic
def rollout_create(
    *,
    deployment,
    challenger,
    stages=None,
    gates=None,
    user=None,
    start: bool = False,
    reason: str = "",
    actor_label: str | None = None,
) -> Rollout:
    """A rollout from the deployment's current champion to `challenger` (draft, or started).
    `actor_label` names the automatic process that acted when there is no user."""
    deployment = lock_deployment(deployment.pk)
    check_version_fits(deployment, challenger, field="challenger")
    open_rollout = Rollout.objects.filter(
        deployment=deployment, status__in=[s for s in ALLOWED_FROM[RolloutAction.ABORT]]
    ).first()
    if open_rollout is not None:
        raise TransitionConflict(
            f"deployment {deployment.name} already has an open rollout ({open_rollout.pk}, {open_rollout.status})"
        )
    champion = _current_champion(deployment).model_version
    if champion.pk == challenger.pk:
        raise ValidationError({"challenger": f"{challenger} is already the champion"})
    rollout = Rollout.objects.create(
        deployment=deployment,
        champion=champion,
        challenger=challenger,
        stages=validate_stages(stages),
        gates=validate_gates(gates),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    record_event(
        deployment=deployment,
        rollout=rollout,
        kind=EventKind.ROLLOUT_CREATED,
        user=user,
        actor_label=actor_label,
        to_status=rollout.status,
        reason=reason or f"{champion} → {challenger}",
        metrics={},
    )
    after_commit(deployment.name)
    if start:
        rollout = rollout_transition(
            rollout=rollout, action=RolloutAction.START, user=user, actor_label=actor_label, reason=reason
        )
    return rollout


def _split(rollout: Rollout, percent: float) -> dict[int, dict]:
    return {
        rollout.champion_id: {"weight": 100.0 - percent, "role": VersionRole.CHAMPION},
        rollout.challenger_id: {"weight": percent, "role": VersionRole.CHALLENGER},
    }


def rollout_metrics(rollout: Rollout) -> dict:
    if rollout.started_at is None:
        return {}
    return metrics_snapshot(
        rollout.deployment, since=rollout.stage_started_at or rollout.started_at, feedback_since=rollout.started_at
    )


@transaction.atomic
def rollout_transition(
    *,
    rollout: Rollout,
    action: str,
    user=None,
    actor_label: str | None = None,
    reason: str = "",
    expected_stage: int | None = None,
    expected_status: str | None = None,
    metrics: dict | None = None,
    serve_after=None,
) -> Rollout:
    """Moves a rollout by `action` (RolloutAction). Raises TransitionConflict when the rollout is not
    in a state that allows it, or no longer at `expected_stage` or in `expected_status` (the gate
    evaluator passes RUNNING: a Pause that lands while it computes must stand).

    `serve_after` (abort and roll back only) is the model version that serves all traffic once the
    rollout has ended, when the whole deployment rolls back to a version of its choice; by default
    the rollout's champion takes all traffic back (and a draft, which never served, changes none)."""
    action = RolloutAction(action)
    if serve_after is not None and action not in (RolloutAction.ABORT, RolloutAction.ROLLBACK):
        raise ValueError(f"serve_after only applies to ending a rollout, not to {action.label.lower()}")
    deployment = lock_deployment(rollout.deployment_id)
    rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
    rollout.deployment = deployment
    if rollout.status not in ALLOWED_FROM[action]:
        raise TransitionConflict(
            f"cannot {action.label.lower()} rollout {rollout.pk}: it is {rollout.get_status_display().lower()}"
        )
    if expected_status is not None and rollout.status != expected_status:
        raise TransitionConflict(
            f"rollout {rollout.pk} is {rollout.get_status_display().lower()} now, not "
            f"{RolloutStatus(expected_status).label.lower()}; someone acted first — reload and decide again"
        )
    if expected_stage is not None and rollout.stage_index != expected_stage:
        raise TransitionConflict(
            f"rollout {rollout.pk} is at stage {rollout.stage_index + 1} ({rollout.current_percent:g}%) now, not stage "
            f"{expected_stage + 1}; someone acted first — reload and decide again"
        )
    actor_label = actor_label or actor_label_of(user)
    snapshot = metrics if metrics is not None else rollout_metrics(rollout)
    before = rollout.status
    now = timezone.now()
    weights = None
    if action == RolloutAction.START:
        rollout.status, rollout.stage_index = RolloutStatus.RUNNING, 0
        rollout.started_at = rollout.stage_started_at = now
        weights = _split(rollout, rollout.stages[0]["percent"])
        kind = EventKind.ROLLOUT_STARTED
    elif action == RolloutAction.PROMOTE and rollout.stage_index + 1 < len(rollout.stages):
        rollout.status = RolloutStatus.RUNNING
        rollout.stage_index += 1
        rollout.stage_started_at = now
        weights = _split(rollout, rollout.stages[rollout.stage_index]["percent"])
        kind = EventKind.STAGE_ADVANCED
    elif action == RolloutAction.PROMOTE:
        rollout.status, rollout.ended_at = RolloutStatus.COMPLETED, now
        weights = {rollout.challenger_id: {"weight": 100.0, "role": VersionRole.CHAMPION}}
        kind = EventKind.ROLLOUT_COMPLETED
    elif action == RolloutAction.PAUSE:
        rollout.status = RolloutStatus.PAUSED
        kind = EventKind.ROLLOUT_PAUSED
    elif action == RolloutAction.RESUME:
        rollout.status = RolloutStatus.RUNNING
        kind = EventKind.ROLLOUT_RESUMED
    else:
        was_serving = rollout.status != RolloutStatus.DRAFT
        rollout.status = RolloutStatus.ABORTED if action == RolloutAction.ABORT else RolloutStatus.ROLLED_BACK
        rollout.ended_at = now
        if serve_after is not None:
            weights = {serve_after.pk: {"weight": 100.0, "role": VersionRole.CHAMPION}}
        elif was_serving:
            weights = {rollout.champion_id: {"weight": 100.0, "role": VersionRole.CHAMPION}}
        kind = EventKind.ROLLOUT_ABORTED if action == RolloutAction.ABORT else EventKind.ROLLOUT_ROLLED_BACK
    rollout.save(update_fields=["status", "stage_index", "started_at", "stage_started_at", "ended_at", "updated_at"])
    if weights is not None:
        apply_traffic(deployment, weights)
        routing_changed(deployment)
    else:
        after_commit(deployment.name)
    record_event(
        deployment=deployment,
        rollout=rollout,
        kind=kind,
        user=user,
        actor_label=actor_label,
        reason=reason,
        from_status=before,
        to_status=rollout.status,
        metrics=snapshot,
    )
    if kind == EventKind.ROLLOUT_COMPLETED:
        # After the event, so the alias move follows the completion in the timeline (a no-op when
        # the delivery receiver of that event moved it already).
        champion_alias_move(deployment, rollout.challenger, user, f"rollout {rollout.pk} completed", rollout=rollout)
    return rollout


@transaction.atomic
def deployment_rollback(
    *, deployment, model_version, user=None, actor_label: str | None = None, reason: str = ""
) -> Deployment:
    """One action back to `model_version` (any version of the deployment's model) at 100% of traffic.

    An open rollout ends as rolled back (a draft, which never served, as aborted). Web processes
    switch within about a second; each keeps serving the old table until the new version is loaded,
    so no request is dropped.
    """
    deployment = lock_deployment(deployment.pk)
    check_version_fits(deployment, model_version)
    rollout = open_rollout(deployment)
    if rollout is None:
        apply_traffic(deployment, {model_version.pk: {"weight": 100.0, "role": VersionRole.CHAMPION}})
        routing_changed(deployment)
    else:
        action = RolloutAction.ABORT if rollout.status == RolloutStatus.DRAFT else RolloutAction.ROLLBACK
        rollout_transition(
            rollout=rollout,
            action=action,
            user=user,
            actor_label=actor_label,
            serve_after=model_version,
            reason=reason or f"deployment rolled back to {model_version}",
        )
    champion_alias_move(deployment, model_version, user, reason or f"deployment {deployment.name} rolled back")
    record_event(
        deployment=deployment,
        kind=EventKind.ROLLED_BACK_TO_VERSION,
        user=user,
        actor_label=actor_label,
        to_status=str(model_version.version),
        reason=reason or f"rolled back to {model_version}",
    )
    return deployment
