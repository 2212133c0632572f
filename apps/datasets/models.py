from django.conf import settings
from django.db import models

from apps.core.models import TimeStampedModel

from .choices import DatasetTask, FileFormat, VersionSource


class Dataset(TimeStampedModel):
    """A named table of observations; its content lives in immutable versions."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    task = models.CharField(max_length=20, choices=DatasetTask.choices)
    target_column = models.CharField(
        max_length=200,
        help_text="Raw column the label comes from. A feature spec's horizon target may derive the label "
        "from it (e.g. direction of the forward return of 'close').",
    )
    time_column = models.CharField(max_length=200, blank=True, help_text="Optional: makes the data a time series.")
    entity_column = models.CharField(
        max_length=200, blank=True, help_text="Optional: one series per value (e.g. a ticker); no leakage across them."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_time_series(self) -> bool:
        return bool(self.time_column)


class DatasetVersion(models.Model):
    """One immutable upload of a dataset's content. Identical content is stored once (sha256)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    file = models.CharField(max_length=500, help_text="Path of the content in artifact storage.")
    original_filename = models.CharField(max_length=255, blank=True)
    file_format = models.CharField(max_length=10, choices=FileFormat.choices)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    rows = models.PositiveIntegerField()
    schema = models.JSONField(help_text="[{name, dtype, nulls}] in file order.")
    profile = models.JSONField(help_text="{column: {mean, std, min, max, quantiles, histogram}} for numeric columns.")
    source = models.CharField(max_length=20, choices=VersionSource.choices, default=VersionSource.UPLOAD)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_unique_number"),
            models.UniqueConstraint(fields=["dataset", "sha256"], name="dataset_version_unique_content"),
        ]

    def __str__(self):
        return f"{self.dataset.name} v{self.version}"

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.schema]


class FeatureSpec(TimeStampedModel):
    """A declarative feature pipeline (JSON, see apps.datasets.preprocessing.spec). Versions are immutable."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="feature_specs")
    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    spec = models.JSONField()
    history_rows = models.PositiveIntegerField(
        default=1, help_text="Raw rows per entity that one prediction needs (longest lag or window + 1)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["dataset", "name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name", "version"], name="feature_spec_unique_version"),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"
