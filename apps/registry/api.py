from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import Pagination

from . import selectors
from .models import AliasEvent, ModelVersion, RegisteredModel
from .services import model_alias_set, model_version_update


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="registered_model.name", read_only=True)
    dataset_version = serializers.StringRelatedField(read_only=True)
    dataset_version_id = serializers.IntegerField(read_only=True)
    training_run = serializers.IntegerField(source="training_run_id", read_only=True)
    aliases = serializers.ListField(child=serializers.CharField(), read_only=True)
    history_rows = serializers.IntegerField(read_only=True)
    created_by = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "framework",
            "model_type",
            "task",
            "artifact_uri",
            "artifact_sha256",
            "signature",
            "history_rows",
            "metrics",
            "params",
            "dataset_version",
            "dataset_version_id",
            "dataset_sha256",
            "training_run",
            "library_versions",
            "code_version",
            "plugin",
            "tags",
            "description",
            "aliases",
            "created_by",
            "created_at",
            "archived_at",
        ]
        read_only_fields = ["archived_at"]


class RegisteredModelSerializer(serializers.ModelSerializer):
    aliases = serializers.SerializerMethodField()
    latest_version = serializers.IntegerField(source="last_version", read_only=True)
    version_count = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "latest_version", "version_count", "aliases", "created_at", "updated_at"]

    def get_aliases(self, model) -> dict[str, int]:
        return selectors.model_aliases(model=model)

    def get_version_count(self, model) -> int:
        count = getattr(model, "version_count", None)
        return count if count is not None else model.versions.count()


class AliasEventSerializer(serializers.ModelSerializer):
    from_version = serializers.IntegerField(
        source="from_version.version", allow_null=True, read_only=True, default=None
    )
    to_version = serializers.IntegerField(source="to_version.version", allow_null=True, read_only=True, default=None)
    actor = serializers.StringRelatedField()

    class Meta:
        model = AliasEvent
        fields = ["alias", "from_version", "to_version", "actor", "reason", "created_at"]


class RegisteredModelDetailSerializer(RegisteredModelSerializer):
    alias_events = serializers.SerializerMethodField()

    class Meta(RegisteredModelSerializer.Meta):
        fields = RegisteredModelSerializer.Meta.fields + ["alias_events"]

    def get_alias_events(self, model) -> list[dict]:
        return AliasEventSerializer(selectors.alias_events(model=model)[:50], many=True).data


class AliasInputSerializer(serializers.Serializer):
    alias = serializers.CharField(max_length=50)
    version = serializers.IntegerField(min_value=1, allow_null=True, help_text="null removes the alias")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class VersionUpdateSerializer(serializers.Serializer):
    tags = serializers.DictField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    archived = serializers.BooleanField(required=False, help_text="false un-archives the version")

    def validate_archived(self, value):
        if value:
            raise serializers.ValidationError(
                "only false (un-archive) is accepted: versions are archived by the "
                "retention sweep (REGISTRY_ARCHIVE_AFTER_DAYS)"
            )
        return value


class ModelListApi(GenericAPIView):
    serializer_class = RegisteredModelSerializer
    pagination_class = Pagination

    def get_queryset(self):
        return selectors.registered_model_list().prefetch_related("aliases__version")

    @extend_schema(operation_id="models_list", responses=RegisteredModelSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ModelDetailApi(GenericAPIView):
    serializer_class = RegisteredModelDetailSerializer

    def get(self, request, name: str):
        return Response(self.get_serializer(selectors.registered_model_get(name=name)).data)


class ModelVersionListApi(GenericAPIView):
    serializer_class = ModelVersionSerializer
    pagination_class = Pagination

    def get_queryset(self):
        # Archived versions (never deployed, past retention) are hidden unless asked for: ?archived=true
        # lists only them.
        raw = self.request.query_params.get("archived", "false").strip().lower()
        if raw not in {"true", "false"}:
            raise ValidationError({"archived": "true or false"})
        versions = selectors.model_version_list(model=selectors.registered_model_get(name=self.kwargs["name"]))
        return versions.filter(archived_at__isnull=raw == "false")

    @extend_schema(
        operation_id="models_versions_list",
        responses=ModelVersionSerializer(many=True),
        parameters=[OpenApiParameter("archived", bool, description="true lists only archived versions")],
    )
    def get(self, request, name: str):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ModelVersionDetailApi(GenericAPIView):
    serializer_class = ModelVersionSerializer

    def _get(self, name: str, version: int) -> ModelVersion:
        return selectors.model_version_get(model=selectors.registered_model_get(name=name), version=version)

    def get(self, request, name: str, version: int):
        return Response(self.get_serializer(self._get(name, version)).data)

    @extend_schema(request=VersionUpdateSerializer, responses=ModelVersionSerializer)
    def patch(self, request, name: str, version: int):
        serializer = VersionUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        updated = model_version_update(version=self._get(name, version), **serializer.validated_data)
        return Response(ModelVersionSerializer(updated).data)


class ModelAliasApi(APIView):
    @extend_schema(
        request=AliasInputSerializer,
        responses=RegisteredModelDetailSerializer,
        summary="Point an alias (champion, challenger, ...) at a version, or remove it",
    )
    def post(self, request, name: str):
        model = selectors.registered_model_get(name=name)
        serializer = AliasInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = None
        if data["version"] is not None:
            version = model.versions.filter(version=data["version"]).first()
            if version is None:
                raise ValidationError({"version": f"{model.name} has no version {data['version']}."})
        model_alias_set(model=model, alias=data["alias"], version=version, user=request.user, reason=data["reason"])
        return Response(RegisteredModelDetailSerializer(selectors.registered_model_get(name=name)).data)
