from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import TimeStampedModel


class RegisteredModel(TimeStampedModel):
    """A named line of model versions, e.g. "price-direction"."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    # Version numbers come from this counter under a row lock: race-free and never reused.
    last_version = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ModelVersion(models.Model):
    """An immutable, loadable model: artifact (verified by sha256), signature, lineage and metrics.

    `artifact_sha256` is the sha256 of the artifact's MANIFEST.json, which lists the sha256 of every
    file; apps.registry.loading checks both before anything is deserialised.
    """

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    framework = models.CharField(max_length=10)
    model_type = models.CharField(max_length=50)
    task = models.CharField(max_length=20)
    artifact_uri = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    signature = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text='{"val": {...}, "test": {...}}')
    params = models.JSONField(default=dict, blank=True)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="model_versions"
    )
    dataset_sha256 = models.CharField(max_length=64)
    training_run = models.ForeignKey("training.TrainingRun", on_delete=models.PROTECT, related_name="model_versions")
    library_versions = models.JSONField(default=dict, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    plugin = models.JSONField(
        default=dict, blank=True, help_text="The model type's provenance: module, package, version, code sha256."
    )
    tags = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set by the retention sweep (apps/delivery/archiving.py) on versions never deployed: kept, hidden
    # from default lists, refused for new rollouts and traffic until staff un-archive it.
    archived_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["registered_model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "version"], name="registry_version_unique"),
        ]

    def __str__(self):
        return f"{self.registered_model.name} v{self.version}"

    @property
    def history_rows(self) -> int:
        return int(self.signature.get("history_rows", 1))

    @property
    def aliases(self) -> list[str]:
        return sorted(self.alias_set.values_list("alias", flat=True))


class ModelAlias(models.Model):
    """A movable name (champion, challenger, ...) pointing at one version of a model."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=50)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="alias_set")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["registered_model", "alias"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "alias"], name="registry_alias_unique")]

    def __str__(self):
        return f"{self.registered_model.name}@{self.alias} → v{self.version.version}"


class AliasEvent(models.Model):
    """Who moved an alias from which version to which, and when."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_events")
    alias = models.CharField(max_length=50)
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    # The rollout that moved it (a plain id: the registry does not depend on deployments).
    rollout_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        src = f"v{self.from_version.version}" if self.from_version_id else "-"
        dst = f"v{self.to_version.version}" if self.to_version_id else "-"
        return f"{self.registered_model.name}@{self.alias}: {src} → {dst}"
