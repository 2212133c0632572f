import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from .storage import ArtifactIntegrityError, artifact_verify

ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")


def registered_model_get_or_create(*, name: str, user=None, description: str = "") -> RegisteredModel:
    if not NAME_RE.match(name or ""):
        raise ValidationError({"name": f"{name!r} is not a valid model name (letters, digits, '-', '_', '.')."})
    try:
        with transaction.atomic():
            model, _ = RegisteredModel.objects.get_or_create(
                name=name, defaults={"created_by": user, "description": description}
            )
    except IntegrityError:  # created by someone else between our get and create
        model = RegisteredModel.objects.get(name=name)
    return model


def model_version_create(
    *,
    name: str,
    training_run,
    artifact_uri: str,
    artifact_sha256: str,
    user=None,
    tags: dict | None = None,
    description: str = "",
    **fields,
) -> ModelVersion:
    """Registers a committed artifact, made by `training_run`, as the next version of model `name`
    (the run itself is checked by apps.training.services.registration). Registering the same run
    under the same name again returns the existing version. The artifact is verified (every file
    hashed) before the version exists. `fields` are the version's other columns (framework, signature,
    metrics, ...)."""
    try:
        artifact_verify(uri=artifact_uri, sha256=artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise ValidationError({"run": f"run {training_run.pk}'s artifact cannot be registered: {exc}"}) from exc

    model = registered_model_get_or_create(name=name, user=user)
    with transaction.atomic():
        # The row lock serialises version numbering per model across processes.
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        existing = ModelVersion.objects.filter(registered_model=model, training_run=training_run).first()
        if existing is not None:
            return existing
        model.last_version += 1
        model.save(update_fields=["last_version", "updated_at"])
        return ModelVersion.objects.create(
            registered_model=model,
            version=model.last_version,
            artifact_uri=artifact_uri,
            artifact_sha256=artifact_sha256,
            training_run=training_run,
            tags=tags or {},
            description=description,
            created_by=user,
            **fields,
        )


@transaction.atomic
def model_alias_set(
    *,
    model: RegisteredModel,
    alias: str,
    version: ModelVersion | None,
    user=None,
    reason: str = "",
    rollout_id: int | None = None,
) -> ModelAlias | None:
    """Points `alias` of `model` at `version` (None removes the alias) and records an AliasEvent
    (naming `rollout_id` when a rollout moved it)."""
    alias = (alias or "").strip().lower()
    if not ALIAS_RE.match(alias):
        raise ValidationError({"alias": f"{alias!r} is not a valid alias (lowercase letters, digits, '-', '_')."})
    if alias == "latest":
        raise ValidationError({"alias": "'latest' is reserved: it always means the newest version."})
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if version is not None and version.registered_model_id != model.pk:
        raise ValidationError({"version": f"{version} is not a version of {model.name}."})
    current = ModelAlias.objects.select_related("version").filter(registered_model=model, alias=alias).first()
    previous = current.version if current else None
    if previous == version:
        return current
    now = timezone.now()
    if version is None:
        if current is not None:
            current.delete()
        result = None
    elif current is None:
        result = ModelAlias.objects.create(
            registered_model=model, alias=alias, version=version, updated_at=now, updated_by=user
        )
    else:
        current.version, current.updated_at, current.updated_by = version, now, user
        current.save(update_fields=["version", "updated_at", "updated_by"])
        result = current
    AliasEvent.objects.create(
        registered_model=model,
        alias=alias,
        from_version=previous,
        to_version=version,
        actor=user,
        reason=reason,
        rollout_id=rollout_id,
        created_at=now,
    )
    return result


ROLLOUT_STARTED, ROLLOUT_COMPLETED, ROLLOUT_ENDED = "started", "completed", "ended"


@transaction.atomic
def model_aliases_follow_rollout(
    *, model: RegisteredModel, rollout_id: int, moment: str, champion: ModelVersion, challenger: ModelVersion, user=None
) -> None:
    """Keeps `champion` and `challenger` on what a rollout serves, each move an AliasEvent naming it.

    `moment` is ROLLOUT_STARTED (challenger → the candidate, champion → the serving champion if it
    was not there yet), ROLLOUT_COMPLETED (champion → the
    candidate, challenger removed) or ROLLOUT_ENDED (rolled back or aborted: champion stays or goes
    back to the old champion, challenger removed). The challenger alias is only removed while it
    still points at this rollout's candidate: someone may have pointed it elsewhere by hand since.
    """
    who = user if getattr(user, "is_authenticated", False) else None
    if moment == ROLLOUT_STARTED:
        model_alias_set(
            model=model,
            alias="champion",
            version=champion,
            user=who,
            rollout_id=rollout_id,
            reason=f"rollout {rollout_id} started: {champion} serves as champion",
        )
        model_alias_set(
            model=model,
            alias="challenger",
            version=challenger,
            user=who,
            rollout_id=rollout_id,
            reason=f"rollout {rollout_id} started: {challenger} challenges {champion}",
        )
        return
    winner = challenger if moment == ROLLOUT_COMPLETED else champion
    verb = "completed" if moment == ROLLOUT_COMPLETED else "rolled back or aborted"
    model_alias_set(
        model=model,
        alias="champion",
        version=winner,
        user=who,
        rollout_id=rollout_id,
        reason=f"rollout {rollout_id} {verb}: {winner} serves as champion",
    )
    if ModelAlias.objects.filter(registered_model=model, alias="challenger", version=challenger).exists():
        model_alias_set(
            model=model,
            alias="challenger",
            version=None,
            user=who,
            rollout_id=rollout_id,
            reason=f"rollout {rollout_id} {verb}: {challenger} no longer challenges",
        )


def _holds_nul(value) -> bool:
    """A NUL anywhere in a JSON value, keys included (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@transaction.atomic
def model_version_update(
    *, version: ModelVersion, tags: dict | None = None, description: str | None = None, archived: bool | None = None
) -> ModelVersion:
    """Tags and description are the only mutable parts of a version; `archived=False` un-archives it
    (archiving itself is the retention sweep's, apps/delivery/archiving.py)."""
    fields = []
    if archived is False and version.archived_at is not None:
        version.archived_at = None
        fields.append("archived_at")
    if tags is not None:
        if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
            raise ValidationError({"tags": "must be an object of tag names to values."})
        if _holds_nul(tags):
            # PostgreSQL's jsonb cannot store NUL, in keys or values.
            raise ValidationError({"tags": "tag names and values may not hold a NUL character."})
        version.tags = tags
        fields.append("tags")
    if description is not None:
        version.description = description
        fields.append("description")
    if fields:
        version.save(update_fields=fields)
    return version
