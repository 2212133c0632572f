from rest_framework import serializers

from apps.core.limits import BIGINT_MAX, INT32_MAX

from .choices import DatasetTask
from .models import Dataset, DatasetVersion, FeatureSpec


class DatasetOutputSerializer(serializers.ModelSerializer):
    versions = serializers.IntegerField(source="versions.count", read_only=True)
    latest_version = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "description",
            "task",
            "target_column",
            "time_column",
            "entity_column",
            "versions",
            "latest_version",
            "created_by",
            "created_at",
        ]

    def get_latest_version(self, obj) -> int | None:
        latest = obj.versions.order_by("-version").values_list("version", flat=True).first()
        return latest


class DatasetInputSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    task = serializers.ChoiceField(choices=DatasetTask.choices)
    target_column = serializers.CharField(max_length=200)
    time_column = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    entity_column = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class DatasetUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(allow_blank=True)


class DatasetVersionOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "dataset",
            "version",
            "sha256",
            "rows",
            "size_bytes",
            "file_format",
            "original_filename",
            "source",
            "schema",
            "created_by",
            "created_at",
        ]


class DatasetVersionDetailSerializer(DatasetVersionOutputSerializer):
    class Meta(DatasetVersionOutputSerializer.Meta):
        fields = DatasetVersionOutputSerializer.Meta.fields + ["profile"]


class VersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV (UTF-8, header row) or Parquet, optionally gzip-compressed (.csv.gz) "
        "or alone in a .zip. Over DATASET_MAX_ROWS, _COLUMNS, _CELLS or _DECOMPRESSED_BYTES: "
        "400 naming the limit and the value found."
    )


class TablePreviewSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField(allow_null=True)))


class FeatureSpecOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = FeatureSpec
        fields = [
            "id",
            "dataset",
            "dataset_name",
            "name",
            "version",
            "description",
            "spec",
            "history_rows",
            "created_by",
            "created_at",
        ]


class FeatureSpecInputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    spec = serializers.JSONField()


class SpecValidateInputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=BIGINT_MAX,
        help_text="Check columns against this dataset's newest version.",
    )
    spec = serializers.JSONField()


class SpecErrorSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True)
    key = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class SpecValidateOutputSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    spec = serializers.JSONField(help_text="The spec with defaults filled in.")
    history_rows = serializers.IntegerField(allow_null=True)
    checked_against = serializers.CharField(allow_null=True, help_text="Dataset version the columns were checked on.")


class FeaturePreviewInputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    spec = serializers.JSONField(required=False, help_text="An unsaved spec; or give feature_spec.")
    feature_spec = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=INT32_MAX, help_text="Dataset version number (default: newest)."
    )
    rows = serializers.IntegerField(required=False, default=20, min_value=1, max_value=200)

    def validate(self, attrs):
        if ("spec" in attrs) == ("feature_spec" in attrs):
            raise serializers.ValidationError({"spec": "give either spec (with dataset) or feature_spec."})
        if "spec" in attrs and "dataset" not in attrs:
            raise serializers.ValidationError({"dataset": "required with an unsaved spec."})
        return attrs


class FeaturePreviewOutputSerializer(TablePreviewSerializer):
    feature_names = serializers.ListField(child=serializers.CharField())
    raw_columns = serializers.ListField(child=serializers.CharField())
    history_rows = serializers.IntegerField()
    target = serializers.CharField()
    classes = serializers.ListField(child=serializers.JSONField(), allow_null=True)
    summary = serializers.DictField()
    dataset_version = serializers.IntegerField()
