from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from apps.core.api import Pagination
from apps.core.errors import StateConflict
from apps.core.parsers import FormParser, JSONParser, MultiPartParser
from apps.core.permissions import HasPortalRole
from apps.core.schema import ErrorSerializer

from . import selectors, serializers as s
from .ingest import kinds_from_schema
from .models import Dataset, FeatureSpec
from .preprocessing import DataError, SpecError, validate_spec
from .services import (
    dataset_create,
    dataset_update,
    dataset_version_create,
    feature_spec_create,
)

# A multipart body carries some bytes of boundaries and headers beside the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def spec_error_response(exc: SpecError) -> Response:
    return Response({"spec": exc.as_dict(), "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


def _dataset(pk) -> Dataset:
    return get_object_or_404(Dataset, pk=pk)


def _version(dataset, number):
    version = selectors.dataset_version_get(dataset=dataset, version=number)
    if version is None:
        from django.http import Http404

        raise Http404(f"{dataset.name} has no version {number}.")
    return version


class DatasetListApi(GenericAPIView):
    serializer_class = s.DatasetOutputSerializer
    pagination_class = Pagination

    def get_queryset(self):
        return selectors.dataset_list()

    @extend_schema(
        summary="List datasets", operation_id="datasets_list", responses=s.DatasetOutputSerializer(many=True)
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=s.DatasetInputSerializer,
        responses={201: s.DatasetOutputSerializer},
        summary="Create a dataset (then upload versions)",
    )
    def post(self, request):
        data = s.DatasetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Dataset.objects.filter(name=data.validated_data["name"]).exists():
            raise ValidationError({"name": f"a dataset named {data.validated_data['name']!r} exists already."})
        dataset = dataset_create(user=request.user, **data.validated_data)
        return Response(s.DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(GenericAPIView):
    serializer_class = s.DatasetOutputSerializer

    @extend_schema(summary="A dataset")
    def get(self, request, pk: int):
        return Response(self.get_serializer(_dataset(pk)).data)

    @extend_schema(
        request=s.DatasetUpdateSerializer, responses=s.DatasetOutputSerializer, summary="Change a dataset's description"
    )
    def patch(self, request, pk: int):
        data = s.DatasetUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_update(dataset=_dataset(pk), description=data.validated_data["description"])
        return Response(self.get_serializer(dataset).data)


class DatasetVersionListApi(GenericAPIView):
    serializer_class = s.DatasetVersionOutputSerializer
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.dataset_version_list(dataset=_dataset(self.kwargs["pk"]))

    @extend_schema(
        summary="List a dataset's versions, newest first",
        operation_id="dataset_versions_list",
        responses=s.DatasetVersionOutputSerializer(many=True),
    )
    def get(self, request, pk: int):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": s.VersionUploadSerializer},
        responses={201: s.DatasetVersionDetailSerializer, 200: s.DatasetVersionDetailSerializer},
        summary="Upload a CSV or Parquet file as a new version (identical content: the existing version, 200)",
    )
    def post(self, request, pk: int):
        dataset = _dataset(pk)
        limit = settings.DATASET_UPLOAD_MAX_BYTES
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit + MULTIPART_OVERHEAD:
            # Refuse before reading the body at all.
            raise ValidationError({"file": f"the upload is {declared:,} bytes, over the limit of {limit:,} bytes"})
        data = s.VersionUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        version, created = dataset_version_create(
            dataset=dataset, file=upload, filename=upload.name, user=request.user, source="upload"
        )
        return Response(
            s.DatasetVersionDetailSerializer(version).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DatasetVersionDetailApi(GenericAPIView):
    serializer_class = s.DatasetVersionDetailSerializer

    @extend_schema(summary="A version with its schema and profile")
    def get(self, request, pk: int, version: int):
        return Response(self.get_serializer(_version(_dataset(pk), version)).data)


class DatasetVersionPreviewApi(GenericAPIView):
    serializer_class = s.TablePreviewSerializer

    @extend_schema(
        parameters=[OpenApiParameter("rows", int, description="rows to show (1-500, default 20)")],
        responses={200: s.TablePreviewSerializer, 409: ErrorSerializer},
        summary="The first rows of a version",
    )
    def get(self, request, pk: int, version: int):
        rows = _int_param(request, "rows", 20, 1, 500)
        try:
            preview = selectors.dataset_version_preview(version=_version(_dataset(pk), version), rows=rows)
        except selectors.DatasetFileError as exc:
            raise StateConflict(str(exc)) from None
        return Response(preview)


def _int_param(request, name, default, low, high) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: f"must be a whole number, got {raw!r}."}) from None
    if not low <= value <= high:
        raise ValidationError({name: f"must be between {low} and {high}."})
    return value


class FeatureSpecListApi(GenericAPIView):
    serializer_class = s.FeatureSpecOutputSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]  # the portal's: depth and NUL limits

    def get_queryset(self):
        dataset = self.request.query_params.get("dataset")
        # isdigit alone takes "²", which int() refuses.
        if dataset is not None and not (dataset.isascii() and dataset.isdigit()):
            raise ValidationError({"dataset": "must be a dataset id."})
        return selectors.feature_spec_list(dataset=_dataset(dataset) if dataset else None)

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="only this dataset's specs")],
        summary="List feature specs (every version)",
        operation_id="feature_specs_list",
        responses={200: s.FeatureSpecOutputSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=s.FeatureSpecInputSerializer,
        responses={201: s.FeatureSpecOutputSerializer, 200: s.FeatureSpecOutputSerializer},
        summary="Save a spec as the next version of its name (identical to the newest: that one, 200)",
    )
    def post(self, request):
        data = s.FeatureSpecInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        dataset = Dataset.objects.filter(pk=values.pop("dataset")).first()
        if dataset is None:
            raise ValidationError({"dataset": "no such dataset."})
        try:
            validate_spec(values["spec"])
        except SpecError as exc:
            return spec_error_response(exc)
        kinds = _kinds(dataset)
        if kinds is not None:
            try:
                validate_spec(values["spec"], dataset=dataset, kinds=kinds)
            except SpecError as exc:
                return spec_error_response(exc)
        feature_spec, created = feature_spec_create(dataset=dataset, user=request.user, **values)
        return Response(
            self.get_serializer(feature_spec).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


def _kinds(dataset):
    latest = selectors.dataset_version_latest(dataset=dataset)
    return kinds_from_schema(latest.schema) if latest is not None else None


class FeatureSpecDetailApi(GenericAPIView):
    serializer_class = s.FeatureSpecOutputSerializer

    @extend_schema(summary="A feature spec version")
    def get(self, request, pk: int):
        return Response(self.get_serializer(get_object_or_404(FeatureSpec, pk=pk)).data)


class FeatureSpecValidateApi(GenericAPIView):
    """Checks a spec without saving it; analysts may use it too (it changes nothing)."""

    serializer_class = s.SpecValidateOutputSerializer
    permission_classes = [HasPortalRole]
    parser_classes = [JSONParser]  # the portal's: depth and NUL limits

    @extend_schema(
        request=s.SpecValidateInputSerializer,
        responses={200: s.SpecValidateOutputSerializer, 400: s.SpecErrorSerializer},
        summary="Validate a spec (400 names the step index and key)",
    )
    def post(self, request):
        data = s.SpecValidateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spec = data.validated_data["spec"]
        dataset = latest = None
        if "dataset" in data.validated_data:
            dataset = Dataset.objects.filter(pk=data.validated_data["dataset"]).first()
            if dataset is None:
                raise ValidationError({"dataset": "no such dataset."})
            latest = selectors.dataset_version_latest(dataset=dataset)
        from .preprocessing import spec_history_rows

        try:
            normalized = validate_spec(spec)
            history_rows = None
            if latest is not None:
                history_rows = spec_history_rows(normalized, dataset=dataset, kinds=kinds_from_schema(latest.schema))
        except SpecError as exc:
            return spec_error_response(exc)
        return Response(
            {
                "valid": True,
                "spec": normalized,
                "history_rows": history_rows,
                "checked_against": str(latest) if latest else None,
            }
        )


class FeaturePreviewApi(GenericAPIView):
    """Engineered columns for a spec on a dataset version; a read, so analysts may use it."""

    serializer_class = s.FeaturePreviewOutputSerializer
    permission_classes = [HasPortalRole]
    parser_classes = [JSONParser]  # the portal's: depth and NUL limits

    @extend_schema(
        request=s.FeaturePreviewInputSerializer,
        responses={200: s.FeaturePreviewOutputSerializer, 409: ErrorSerializer},
        summary="Preview the features a spec makes (fitted on the training split)",
    )
    def post(self, request):
        data = s.FeaturePreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "feature_spec" in values:
            feature_spec = FeatureSpec.objects.select_related("dataset").filter(pk=values["feature_spec"]).first()
            if feature_spec is None:
                raise ValidationError({"feature_spec": "no such feature spec."})
            dataset, spec = feature_spec.dataset, feature_spec.spec
        else:
            dataset = Dataset.objects.filter(pk=values["dataset"]).first()
            if dataset is None:
                raise ValidationError({"dataset": "no such dataset."})
            spec = values["spec"]
        if "version" in values:
            version = selectors.dataset_version_get(dataset=dataset, version=values["version"])
            if version is None:
                raise ValidationError({"version": f"{dataset.name} has no version {values['version']}."})
        else:
            version = selectors.dataset_version_latest(dataset=dataset)
            if version is None:
                raise ValidationError({"dataset": f"{dataset.name} has no version yet."})
        try:
            preview = selectors.feature_preview(version=version, spec=spec, rows=values["rows"])
        except SpecError as exc:
            return spec_error_response(exc)
        except DataError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        except selectors.DatasetFileError as exc:
            raise StateConflict(str(exc)) from None
        return Response(preview | {"dataset_version": version.version})
