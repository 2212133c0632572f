from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.schema import ErrorSerializer

from . import selectors
from .choices import StudyStatus
from .serializers import (
    HistoryItemSerializer,
    ImportancesSerializer,
    ParallelCoordinatesSerializer,
    StudyCreateSerializer,
    StudyDetailSerializer,
    StudySerializer,
    TrialSerializer,
)
from .services import study_create, study_pause, study_resume, study_start, study_stop

TAGS = ["tuning"]


def _study_or_404(pk: int):
    study = selectors.study_get(study_id=pk)
    if study is None:
        raise Http404(f"no tuning study {pk}")
    return study


def _detail(study) -> dict:
    study = selectors.study_get(study_id=study.pk)
    context = {"best_trial": selectors.study_best_trial(study=study), "events": selectors.study_events(study=study)}
    return StudyDetailSerializer(study, context=context).data


class StudyListApi(APIView):
    @extend_schema(
        operation_id="studies_list",
        tags=TAGS,
        responses=StudySerializer(many=True),
        parameters=[
            OpenApiParameter("status", str, enum=StudyStatus.values, description="only studies in this status"),
        ],
    )
    def get(self, request):
        status_filter = request.query_params.get("status") or None
        if status_filter and status_filter not in StudyStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(StudyStatus.values)}."})
        return Response(StudySerializer(selectors.study_list(status=status_filter), many=True).data)

    @extend_schema(
        operation_id="studies_create", tags=TAGS, request=StudyCreateSerializer, responses={201: StudyDetailSerializer}
    )
    def post(self, request):
        from apps.training.models import Experiment

        serializer = StudyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        experiment = Experiment.objects.filter(pk=data.pop("experiment")).first()
        if experiment is None:
            raise ValidationError({"experiment": f"no experiment with id {request.data.get('experiment')}."})
        for blankable in ("framework", "model_type", "objective_metric", "direction"):
            data[blankable] = data[blankable] or None
        study = study_create(experiment=experiment, user=request.user, **data)
        return Response(_detail(study), status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    @extend_schema(operation_id="studies_retrieve", tags=TAGS, responses=StudyDetailSerializer)
    def get(self, request, pk: int):
        return Response(_detail(_study_or_404(pk)))


class StudyActionApi(APIView):
    """POST start | pause | resume | stop; the verb is fixed per URL."""

    verb = ""
    SERVICES = {"start": study_start, "pause": study_pause, "resume": study_resume, "stop": study_stop}

    @extend_schema(tags=TAGS, request=None, responses={200: StudyDetailSerializer, 409: ErrorSerializer})
    def post(self, request, pk: int):
        study = _study_or_404(pk)
        study = self.SERVICES[self.verb](study=study, user=request.user)
        return Response(_detail(study))


class StudyTrialsApi(APIView):
    @extend_schema(operation_id="studies_trials", tags=TAGS, responses=TrialSerializer(many=True))
    def get(self, request, pk: int):
        study = _study_or_404(pk)
        return Response(TrialSerializer(selectors.study_trials(study=study), many=True).data)


class StudyHistoryApi(APIView):
    @extend_schema(operation_id="studies_history", tags=TAGS, responses=HistoryItemSerializer(many=True))
    def get(self, request, pk: int):
        study = _study_or_404(pk)
        return Response(HistoryItemSerializer(selectors.study_history(study=study), many=True).data)


class StudyImportancesApi(APIView):
    @extend_schema(operation_id="studies_importances", tags=TAGS, responses=ImportancesSerializer)
    def get(self, request, pk: int):
        study = _study_or_404(pk)
        return Response(ImportancesSerializer(selectors.study_param_importances(study=study)).data)


class StudyParallelCoordinatesApi(APIView):
    @extend_schema(operation_id="studies_parallel_coordinates", tags=TAGS, responses=ParallelCoordinatesSerializer)
    def get(self, request, pk: int):
        study = _study_or_404(pk)
        return Response(ParallelCoordinatesSerializer(selectors.study_parallel_coordinates(study=study)).data)
