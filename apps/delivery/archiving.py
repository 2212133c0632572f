"""Registry retention: versions nobody ever deployed pile up (every retrain registers one, and most
candidates lose their evaluation). Past REGISTRY_ARCHIVE_AFTER_DAYS they are archived: the row and
the artifact are kept (lineage, the timeline and a later un-archive need them), the registry API
hides them unless asked (`?archived=true`), and the rollout and traffic services refuse them.

It lives here, not in the registry, because "deployed" is the deployments' knowledge and "still
being evaluated" is delivery's; the registry does not depend on either.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import conf
from .choices import EVALUATION_ACTIVE, EvaluationAction
from .models import CandidateEvaluation

logger = logging.getLogger(__name__)


def archivable_versions(*, now=None):
    """Versions older than the retention that were never deployed: never in a deployment's traffic
    table (rows stay, retired, once traffic leaves them), never a rollout's champion or challenger,
    under no alias, and not a candidate still being evaluated or waiting for its rollout. None
    when archiving is off (REGISTRY_ARCHIVE_AFTER_DAYS = 0)."""
    from apps.deployments.models import DeploymentVersion, Rollout
    from apps.registry.models import ModelAlias, ModelVersion

    days = conf.get("REGISTRY_ARCHIVE_AFTER_DAYS")
    if days <= 0:
        return None
    cutoff = (now or timezone.now()) - timedelta(days=days)
    version = OuterRef("pk")
    pending = CandidateEvaluation.objects.filter(candidate=version).filter(
        Q(status__in=EVALUATION_ACTIVE) | Q(action=EvaluationAction.WAITING)
    )
    return (
        ModelVersion.objects.filter(archived_at__isnull=True, created_at__lt=cutoff)
        .exclude(Exists(DeploymentVersion.objects.filter(model_version=version)))
        .exclude(Exists(Rollout.objects.filter(Q(champion=version) | Q(challenger=version))))
        .exclude(Exists(ModelAlias.objects.filter(version=version)))
        .exclude(Exists(pending))
    )


def model_versions_archive_undeployed(*, now=None) -> dict:
    """Archives every archivable version (see archivable_versions). Returns {"archived": n}."""
    now = now or timezone.now()
    with transaction.atomic():
        candidates = archivable_versions(now=now)
        if candidates is None:
            return {"archived": 0}
        names = [str(v) for v in candidates.select_related("registered_model")[:20]]
        # One UPDATE that re-evaluates the conditions, so a version deployed since the list was read stays.
        archived = candidates.update(archived_at=now)
    if archived:
        logger.info("registry retention: archived %s version(s) never deployed: %s", archived, ", ".join(names))
    return {"archived": archived}
