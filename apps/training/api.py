from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import Pagination
from apps.core.schema import ErrorSerializer
from apps.registry import api as registry_api

from . import selectors
from .choices import RunOrigin, RunStatus
from .models import TrainingRun
from .serializers import (
    EpochSerializer,
    ExperimentInputSerializer,
    ExperimentOutputSerializer,
    ExperimentUpdateSerializer,
    FrameworkSerializer,
    LogPageSerializer,
    RegisterInputSerializer,
    RunCancelSerializer,
    RunDetailSerializer,
    RunOutputSerializer,
    RunStartSerializer,
    TrainSerializer,
)
from .services.experiments import experiment_create, experiment_training_config, experiment_update
from .services.registration import model_version_create_from_run
from .services.training_pipeline import training_run_request_stop, training_run_retry, training_run_start


def _start_run(request, *, experiment, data: dict):
    config = experiment_training_config(
        experiment=experiment,
        framework=data.get("framework"),
        model_type=data.get("model_type"),
        params=data.get("params"),
        device=data.get("device"),
    )
    key = request.headers.get("Idempotency-Key")
    run = training_run_start(
        experiment=experiment,
        seed=data.get("seed"),
        register_model=data.get("register_model", True),
        user=request.user,
        origin=RunOrigin.API,
        idempotency_key=f"api:{request.user.pk}:{key[:150]}" if key else None,
        **config,
    )
    return Response(RunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class ExperimentListApi(GenericAPIView):
    serializer_class = ExperimentOutputSerializer
    pagination_class = Pagination

    def get_queryset(self):
        return selectors.experiment_list()

    @extend_schema(operation_id="experiments_list", responses=ExperimentOutputSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=ExperimentInputSerializer, responses={201: ExperimentOutputSerializer})
    def post(self, request):
        from apps.datasets.models import Dataset, FeatureSpec

        serializer = ExperimentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        dataset = Dataset.objects.filter(pk=data.pop("dataset")).first()
        if dataset is None:
            raise ValidationError({"dataset": "no such dataset."})
        spec_id = data.pop("feature_spec", None)
        feature_spec = None
        if spec_id is not None:
            feature_spec = FeatureSpec.objects.filter(pk=spec_id).first()
            if feature_spec is None:
                raise ValidationError({"feature_spec": "no such feature spec."})
        from .models import Experiment

        if Experiment.objects.filter(name=data["name"]).exists():
            raise ValidationError({"name": f"an experiment named {data['name']!r} exists already."})
        experiment = experiment_create(dataset=dataset, feature_spec=feature_spec, user=request.user, **data)
        return Response(ExperimentOutputSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(GenericAPIView):
    serializer_class = ExperimentOutputSerializer

    def get(self, request, pk: int):
        return Response(self.get_serializer(selectors.experiment_get(pk=pk)).data)

    @extend_schema(request=ExperimentUpdateSerializer, responses=ExperimentOutputSerializer)
    def patch(self, request, pk: int):
        serializer = ExperimentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        experiment = experiment_update(experiment=selectors.experiment_get(pk=pk), data=serializer.validated_data)
        return Response(ExperimentOutputSerializer(experiment).data)


class ExperimentTrainApi(APIView):
    @extend_schema(
        request=TrainSerializer,
        responses={201: RunOutputSerializer},
        summary="Train now: start a run of this experiment (blank fields: experiment defaults)",
    )
    def post(self, request, pk: int):
        serializer = TrainSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _start_run(request, experiment=selectors.experiment_get(pk=pk), data=serializer.validated_data)


class RunListApi(GenericAPIView):
    serializer_class = RunOutputSerializer
    pagination_class = Pagination

    def get_queryset(self):
        params = self.request.query_params
        experiment = params.get("experiment")
        active = params.get("active")
        if experiment is not None and not experiment.isdigit():
            raise ValidationError({"experiment": "must be an experiment id."})
        state = params.get("status") or None
        if state is not None and state not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {RunStatus.values}."})
        return selectors.run_list(
            experiment_id=int(experiment) if experiment else None,
            status=state,
            active={"true": True, "1": True, "false": False, "0": False}.get((active or "").lower()),
        ).prefetch_related("model_versions__registered_model")

    @extend_schema(
        operation_id="runs_list",
        responses=RunOutputSerializer(many=True),
        parameters=[
            OpenApiParameter("experiment", OpenApiTypes.INT),
            OpenApiParameter("status", OpenApiTypes.STR),
            OpenApiParameter("active", OpenApiTypes.BOOL),
        ],
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=RunStartSerializer,
        responses={201: RunOutputSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        summary="Start a training run (queued on the cpu or gpu queue)",
    )
    def post(self, request):
        serializer = RunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        from .models import Experiment

        experiment = (
            Experiment.objects.select_related("dataset", "feature_spec").filter(pk=data.pop("experiment")).first()
        )
        if experiment is None:
            raise ValidationError({"experiment": "no such experiment."})
        return _start_run(request, experiment=experiment, data=data)


class RunDetailApi(GenericAPIView):
    serializer_class = RunDetailSerializer

    def get(self, request, pk: int):
        return Response(self.get_serializer(selectors.run_get(pk=pk)).data)


class RunCancelApi(APIView):
    @extend_schema(
        request=RunCancelSerializer,
        responses={202: RunOutputSerializer, 409: ErrorSerializer},
        summary="Cancel a run: a queued run ends now, a running one at its next batch or epoch",
    )
    def post(self, request, pk: int):
        serializer = RunCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = training_run_request_stop(
            run=selectors.run_get(pk=pk), reason=serializer.validated_data["reason"], user=request.user
        )
        return Response(RunOutputSerializer(selectors.run_get(pk=run.pk)).data, status=status.HTTP_202_ACCEPTED)


class RunRetryApi(APIView):
    @extend_schema(
        request=None,
        responses={201: RunOutputSerializer, 409: ErrorSerializer},
        summary="Retry a failed or cancelled run as a new run with the same data and settings",
    )
    def post(self, request, pk: int):
        run = training_run_retry(run=selectors.run_get(pk=pk), user=request.user)
        return Response(RunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class RunLogsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="return lines with seq > after"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="at most this many (max 1000)"),
        ],
        responses=LogPageSerializer,
        summary="Log lines after a sequence number",
    )
    def get(self, request, pk: int):
        run = get_object_or_404(selectors.run_list(), pk=pk)
        try:
            after = int(request.query_params.get("after", 0))
            limit = int(request.query_params.get("limit", selectors.LOG_PAGE_MAX))
        except ValueError as exc:
            raise ValidationError({"after": "after and limit must be whole numbers."}) from exc
        if after < 0 or limit < 1:
            raise ValidationError({"after": "after must be >= 0 and limit >= 1."})
        lines = selectors.run_log_lines(run_id=run.pk, after=after, limit=limit)
        data = {"run": run.pk, "status": run.status, "last_seq": lines[-1].seq if lines else after, "lines": lines}
        return Response(LogPageSerializer(data).data)


class RunEpochsApi(ListAPIView):
    serializer_class = EpochSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.run_epochs(run=selectors.run_get(pk=self.kwargs["pk"]))


class FrameworkListApi(APIView):
    @extend_schema(responses=FrameworkSerializer(many=True), summary="Frameworks, model types and their parameters")
    def get(self, request):
        from apps.frameworks import FRAMEWORK_LABELS, FRAMEWORKS, get_adapter

        data = []
        for name in FRAMEWORKS:
            adapter = get_adapter(name)
            data.append(
                {
                    "name": name,
                    "label": FRAMEWORK_LABELS[name],
                    "supports_gpu": adapter.supports_gpu,
                    "model_types": adapter.describe(),
                }
            )
        return Response(FrameworkSerializer(data, many=True).data)


class ModelVersionListApi(registry_api.ModelVersionListApi):
    """GET lists a model's versions (the registry's view). POST registers a succeeded run as the next
    version: that starts from a run, so this route is training's (apps/CONTRACTS.md, "Import directions")."""

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: registry_api.ModelVersionSerializer},
        summary="Register a succeeded run as the next version of this model",
    )
    def post(self, request, name: str):
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = TrainingRun.objects.filter(pk=data["run"]).first()
        if run is None:
            raise ValidationError({"run": "no such training run."})
        version = model_version_create_from_run(
            run=run, name=name, user=request.user, tags=data["tags"], description=data["description"]
        )
        return Response(registry_api.ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)
