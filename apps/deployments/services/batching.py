"""Per-deployment micro-batching settings (Deployment.max_batch_size / max_batch_wait_ms)."""

from __future__ import annotations

import logging

from django.db import transaction

from ..models import Deployment
from .traffic import lock_deployment, routing_changed

logger = logging.getLogger(__name__)


@transaction.atomic
def deployment_batching_set(
    *, deployment: Deployment, max_batch_size: int | None = None, max_batch_wait_ms: float | None = None, user=None
) -> Deployment:
    """Changes how the deployment's requests are batched; None keeps a value. Validated against the
    model's bounds (ValidationError naming the field -> 400). A new routing generation is published
    on commit so every web process takes its new table (same versions, new batching) within about a
    second; an edit that skips this service (a plain save) still arrives at the processes' next
    database check."""
    locked = lock_deployment(deployment.pk)
    if max_batch_size is not None:
        locked.max_batch_size = max_batch_size
    if max_batch_wait_ms is not None:
        locked.max_batch_wait_ms = max_batch_wait_ms
    locked.full_clean(exclude=["registered_model", "created_by"], validate_unique=False, validate_constraints=False)
    locked.save(update_fields=["max_batch_size", "max_batch_wait_ms", "updated_at"])
    routing_changed(locked)
    logger.info(
        "deployment %s: batching %d requests, %g ms wait (by %s)",
        locked.name,
        locked.max_batch_size,
        locked.max_batch_wait_ms,
        getattr(user, "username", "system"),
    )
    return locked
