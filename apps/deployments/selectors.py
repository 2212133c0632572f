"""Reads of deployments, their versions, rollouts and events."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .choices import OPEN_ROLLOUT_STATUSES
from .models import Deployment, DeploymentEvent, DeploymentVersion, Rollout
from .serving.inputs import InputSpec


def deployment_list() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("registered_model").prefetch_related(
        Prefetch("versions", queryset=DeploymentVersion.objects.select_related("model_version")),
        Prefetch(
            "rollouts",
            queryset=Rollout.objects.filter(status__in=OPEN_ROLLOUT_STATUSES).select_related("champion", "challenger"),
            to_attr="open_rollouts",
        ),
    )


def deployment_get(*, name: str) -> Deployment | None:
    return deployment_list().filter(name=name).first()


def deployment_open_rollout(*, deployment: Deployment) -> Rollout | None:
    cached = getattr(deployment, "open_rollouts", None)
    if cached is not None:
        return cached[0] if cached else None
    return (
        Rollout.objects.filter(deployment=deployment, status__in=OPEN_ROLLOUT_STATUSES)
        .select_related("champion", "challenger")
        .first()
    )


def deployment_latest_rollout(*, deployment: Deployment) -> Rollout | None:
    return Rollout.objects.filter(deployment=deployment).select_related("champion", "challenger").first()


def deployment_events(*, deployment: Deployment, limit: int = 50) -> list[DeploymentEvent]:
    return list(DeploymentEvent.objects.filter(deployment=deployment).select_related("rollout")[:limit])


def deployment_serving_versions(*, deployment: Deployment) -> list[DeploymentVersion]:
    """Versions with traffic or a shadow copy, champion first."""
    rows = getattr(deployment, "_prefetched_objects_cache", {}).get("versions")
    if rows is None:
        rows = DeploymentVersion.objects.filter(deployment=deployment).select_related("model_version")
    return [r for r in rows if r.weight > 0 or r.shadow]


def deployment_primary_version(*, deployment: Deployment):
    """The model version with the most traffic (whose signature describes the deployment)."""
    serving = [r for r in deployment_serving_versions(deployment=deployment) if not r.shadow]
    return max(serving, key=lambda r: r.weight).model_version if serving else None


def deployment_signature(*, deployment: Deployment) -> dict:
    """What a client must send: raw columns with kinds, history rows per entity, entity/time columns."""
    version = deployment_primary_version(deployment=deployment)
    if version is None:
        return {}
    return model_version_serving_signature(version=version)


def model_version_serving_signature(*, version) -> dict:
    """The same for one model version (V2 `/versions/<v>` metadata)."""
    spec = InputSpec.from_signature(version.signature or {})
    return {
        "model_version": str(version.version),
        "task": version.task,
        "inputs": [{"name": c, "kind": spec.kinds.get(c), "v2_datatype": spec.v2_datatype(c)} for c in spec.columns],
        "history_rows": spec.history_rows,
        "entity_column": spec.entity_column or None,
        "time_column": spec.time_column or None,
        "classes": (version.signature or {}).get("classes"),
    }


def deployment_version_labels(*, deployment: Deployment) -> dict:
    """For charts: version number, role, weight, shadow flag and task of every version the
    deployment has had."""
    rows = DeploymentVersion.objects.filter(deployment=deployment).select_related("model_version")
    return {
        "versions": {r.model_version_id: str(r.model_version.version) for r in rows},
        "roles": {r.model_version_id: r.role for r in rows},
        "weights": {r.model_version_id: r.weight for r in rows},
        "shadows": {r.model_version_id: r.shadow for r in rows},
        "tasks": {r.model_version_id: r.model_version.task for r in rows},
    }
