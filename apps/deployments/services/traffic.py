"""Deployments and their traffic: create, set weights; the helpers the rollout state machine sets
weights with (rolling a deployment back ends its rollout, so it lives in rollouts.py).

Every change locks the deployment row (`select_for_update`), rewrites the weights, increments the
routing generation, writes a DeploymentEvent and, on commit, tells web processes and dashboards.
Lock order everywhere: deployment row first, then its rollout row.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.errors import StateConflict

from ..choices import OPEN_ROLLOUT_STATUSES, EventKind, RolloutStatus, VersionRole
from ..models import Deployment, DeploymentEvent, DeploymentVersion, Rollout
from ..notify import after_commit, deployment_stamp

SNAPSHOT_WINDOW = timedelta(minutes=15)


class TransitionConflict(StateConflict):
    """The change does not fit the current state (someone else acted first, or a rollout owns the
    weights)."""


def actor_label_of(user, fallback: str = "system") -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else fallback


def lock_deployment(deployment_id: int) -> Deployment:
    return Deployment.objects.select_for_update().select_related("registered_model").get(pk=deployment_id)


def check_version_fits(deployment: Deployment, model_version, *, field: str = "model_version") -> None:
    if model_version.registered_model_id != deployment.registered_model_id:
        raise ValidationError(
            {
                field: f"{model_version} is not a version of {deployment.registered_model.name}, "
                f"the model deployment {deployment.name!r} serves"
            }
        )
    check_version_not_archived(model_version, field=field)


def check_version_not_archived(model_version, *, field: str = "model_version") -> None:
    # Read from the database: the retention sweep may have archived it after the caller loaded it.
    archived_at = type(model_version).objects.filter(pk=model_version.pk).values_list("archived_at", flat=True).first()
    if archived_at is not None:
        raise ValidationError(
            {
                field: f"{model_version} was archived on {archived_at:%Y-%m-%d} (never deployed, past "
                f"the registry's retention); un-archive it first to deploy it"
            }
        )


def traffic_snapshot(deployment: Deployment) -> list[dict]:
    rows = DeploymentVersion.objects.filter(deployment=deployment).select_related("model_version")
    return [
        {
            "model_version_id": r.model_version_id,
            "version": r.model_version.version,
            "role": r.role,
            "weight": r.weight,
            "shadow": r.shadow,
        }
        for r in rows
        if r.weight > 0 or r.shadow
    ]


def metrics_snapshot(deployment: Deployment, *, since=None, feedback_since=None) -> dict:
    """Per-version window metrics at the moment of a change, keyed by version number."""
    from apps.monitoring.selectors import version_windows
    from apps.registry.models import ModelVersion

    since = since or timezone.now() - SNAPSHOT_WINDOW
    windows = version_windows(deployment=deployment, since=since, feedback_since=feedback_since)
    numbers = dict(ModelVersion.objects.filter(pk__in=windows).values_list("pk", "version"))
    return {
        "since": since.isoformat(),
        "versions": {str(numbers.get(vid, vid)): w.as_dict() for vid, w in windows.items()},
    }


def apply_traffic(deployment: Deployment, allocations: dict[int, dict]) -> None:
    """Sets the deployment's versions to exactly `allocations` ({model_version_id: {weight, role,
    shadow}}); versions left out keep their row as retired with no traffic. Caller holds the lock."""
    live_total = sum(a["weight"] for a in allocations.values() if not a.get("shadow"))
    if not math.isclose(live_total, 100.0, abs_tol=1e-6):
        raise ValidationError({"traffic": f"weights of the serving versions must add up to 100, got {live_total:g}"})
    rows = {r.model_version_id: r for r in DeploymentVersion.objects.filter(deployment=deployment)}
    next_position = (max((r.position for r in rows.values()), default=-1)) + 1
    for version_id, allocation in allocations.items():
        row = rows.get(version_id)
        if row is None:
            DeploymentVersion.objects.create(
                deployment=deployment,
                model_version_id=version_id,
                weight=allocation["weight"],
                role=allocation["role"],
                shadow=bool(allocation.get("shadow")),
                position=next_position,
            )
            next_position += 1
        else:
            row.weight, row.role, row.shadow = allocation["weight"], allocation["role"], bool(allocation.get("shadow"))
            row.save(update_fields=["weight", "role", "shadow", "updated_at"])
    for version_id, row in rows.items():
        if version_id not in allocations and (row.weight or row.shadow or row.role != VersionRole.RETIRED):
            row.weight, row.role, row.shadow = 0.0, VersionRole.RETIRED, False
            row.save(update_fields=["weight", "role", "shadow", "updated_at"])


def bump_generation(deployment: Deployment) -> int:
    Deployment.objects.filter(pk=deployment.pk).update(generation=F("generation") + 1, updated_at=timezone.now())
    deployment.refresh_from_db(fields=["generation", "updated_at"])
    return deployment.generation


def record_event(
    *,
    deployment: Deployment,
    kind: str,
    user=None,
    actor_label: str | None = None,
    reason: str = "",
    rollout: Rollout | None = None,
    from_status: str = "",
    to_status: str = "",
    metrics: dict | None = None,
) -> DeploymentEvent:
    return DeploymentEvent.objects.create(
        deployment=deployment,
        rollout=rollout,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        stage_index=rollout.stage_index if rollout is not None else None,
        actor=user if user is not None and getattr(user, "is_authenticated", False) else None,
        actor_label=actor_label or actor_label_of(user),
        reason=reason,
        traffic=traffic_snapshot(deployment),
        metrics=metrics if metrics is not None else metrics_snapshot(deployment),
    )


def champion_alias_move(deployment: Deployment, version, user, reason: str, rollout=None) -> None:
    """Keeps the registry's `champion` alias on the version that now serves as champion."""
    from apps.registry.services import model_alias_set

    model_alias_set(
        model=deployment.registered_model,
        alias="champion",
        version=version,
        user=user,
        reason=reason,
        rollout_id=getattr(rollout, "pk", None),
    )


def routing_changed(deployment: Deployment) -> None:
    """Caller holds the lock and has rewritten the weights: new generation, published on commit."""
    after_commit(deployment.name, (deployment_stamp(deployment.created_at), bump_generation(deployment)))


@transaction.atomic
def deployment_create(*, name: str, model_version, user=None, description: str = "") -> Deployment:
    """A deployment serving `model_version` (the champion) with all of the traffic."""
    if Deployment.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a deployment named {name!r} already exists"})
    check_version_not_archived(model_version)
    deployment = Deployment(
        name=name,
        description=description,
        registered_model=model_version.registered_model,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    deployment.full_clean()
    deployment.save()
    apply_traffic(deployment, {model_version.pk: {"weight": 100.0, "role": VersionRole.CHAMPION}})
    routing_changed(deployment)
    record_event(
        deployment=deployment,
        kind=EventKind.DEPLOYMENT_CREATED,
        user=user,
        reason=f"serving {model_version} at 100%",
        metrics={},
    )
    return deployment


def open_rollout(deployment: Deployment) -> Rollout | None:
    return Rollout.objects.filter(deployment=deployment, status__in=OPEN_ROLLOUT_STATUSES).first()


@transaction.atomic
def deployment_set_traffic(
    *, deployment: Deployment, allocations: list[dict], user=None, reason: str = ""
) -> Deployment:
    """Sets the weights by hand: `allocations` = [{model_version, weight (percent), shadow}], the
    serving weights adding up to 100. Refused while a rollout is running: the rollout owns them."""
    deployment = lock_deployment(deployment.pk)
    rollout = open_rollout(deployment)
    if rollout is not None and rollout.status != RolloutStatus.DRAFT:
        raise TransitionConflict(
            f"rollout {rollout.pk} is {rollout.status} and controls the weights; pause or end it first"
        )
    if not allocations:
        raise ValidationError({"traffic": "name at least one version"})
    planned: dict[int, dict] = {}
    for i, allocation in enumerate(allocations):
        version, weight, shadow = (
            allocation["model_version"],
            float(allocation["weight"]),
            bool(allocation.get("shadow")),
        )
        check_version_fits(deployment, version, field=f"traffic[{i}].model_version")
        if version.pk in planned:
            raise ValidationError({f"traffic[{i}].model_version": f"{version} is listed twice"})
        if not 0 <= weight <= 100 or not math.isfinite(weight):
            raise ValidationError({f"traffic[{i}].weight": "a weight is a percentage between 0 and 100"})
        if shadow and weight:
            raise ValidationError(
                {f"traffic[{i}].weight": "a shadow version gets a copy of traffic, not a share: weight 0"}
            )
        planned[version.pk] = {"weight": weight, "shadow": shadow}
    live = [(vid, a) for vid, a in planned.items() if not a["shadow"] and a["weight"] > 0]
    if not live:
        raise ValidationError({"traffic": "at least one version must serve (weight above 0)"})
    champion_id = max(live, key=lambda item: item[1]["weight"])[0]
    for version_id, allocation in planned.items():
        allocation["role"] = VersionRole.CHAMPION if version_id == champion_id else VersionRole.CHALLENGER
    apply_traffic(deployment, {vid: a for vid, a in planned.items() if a["weight"] > 0 or a["shadow"]})
    routing_changed(deployment)
    record_event(
        deployment=deployment, kind=EventKind.TRAFFIC_CHANGED, user=user, reason=reason or "weights set by hand"
    )
    return deployment
