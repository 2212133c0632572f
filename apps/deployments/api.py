"""Management API: list and inspect deployments, set traffic, roll back, run rollouts.

Reads for analysts and staff, writes for staff (the default IsAnalystOrStaff permission).
"""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.schema import ErrorSerializer
from apps.registry.models import ModelVersion

from .choices import RolloutAction
from .selectors import (
    deployment_events,
    deployment_get,
    deployment_latest_rollout,
    deployment_list,
    deployment_open_rollout,
)
from .serializers import (
    ROLLOUT_ACTIONS,
    DeploymentBatchingSerializer,
    DeploymentCreateSerializer,
    DeploymentDetailSerializer,
    DeploymentSerializer,
    DeploymentEventSerializer,
    RollbackSerializer,
    RolloutActionSerializer,
    RolloutCreateSerializer,
    DeploymentRolloutSerializer,
    TrafficSerializer,
)
from .services.batching import deployment_batching_set
from .services.model_deployment_service import (
    deployment_create,
    deployment_rollback,
    deployment_set_traffic,
    rollout_create,
    rollout_transition,
)


def _deployment_or_404(name: str):
    deployment = deployment_get(name=name)
    if deployment is None:
        raise Http404(f"No deployment named {name!r}.")
    return deployment


def _version(deployment, *, field: str, pk: int | None = None, number: int | None = None) -> ModelVersion:
    versions = ModelVersion.objects.select_related("registered_model")
    if pk is not None:
        version = versions.filter(pk=pk).first()
    else:
        version = versions.filter(registered_model=deployment.registered_model, version=number).first()
    if version is None:
        what = f"id {pk}" if pk is not None else f"version {number} of {deployment.registered_model.name}"
        raise ValidationError({field: f"no model version with {what}"})
    return version


def _detail(deployment) -> dict:
    deployment = deployment_get(name=deployment.name)
    context = {
        "events": deployment_events(deployment=deployment, limit=20),
        "last_rollout": deployment_latest_rollout(deployment=deployment),
    }
    return DeploymentDetailSerializer(deployment, context=context).data


class DeploymentListApi(APIView):
    @extend_schema(responses=DeploymentSerializer(many=True), summary="Deployments with versions, weights and rollout")
    def get(self, request):
        return Response(DeploymentSerializer(deployment_list(), many=True).data)

    @extend_schema(
        request=DeploymentCreateSerializer,
        responses={201: DeploymentDetailSerializer},
        summary="Create a deployment serving one version at 100%",
    )
    def post(self, request):
        data = DeploymentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = (
            ModelVersion.objects.select_related("registered_model")
            .filter(pk=data.validated_data["model_version_id"])
            .first()
        )
        if version is None:
            raise ValidationError({"model_version_id": "no such model version"})
        deployment = deployment_create(
            name=data.validated_data["name"],
            model_version=version,
            user=request.user,
            description=data.validated_data["description"],
        )
        batching = {
            k: data.validated_data[k] for k in ("max_batch_size", "max_batch_wait_ms") if k in data.validated_data
        }
        if batching:
            deployment = deployment_batching_set(deployment=deployment, user=request.user, **batching)
        return Response(_detail(deployment), status=status.HTTP_201_CREATED)


class DeploymentDetailApi(APIView):
    @extend_schema(
        responses=DeploymentDetailSerializer, summary="A deployment: versions, signature, rollout, recent events"
    )
    def get(self, request, name):
        return Response(_detail(_deployment_or_404(name)))

    @extend_schema(
        request=DeploymentBatchingSerializer,
        responses={200: DeploymentDetailSerializer},
        summary="Change how the deployment's prediction requests are batched (staff)",
    )
    def patch(self, request, name):
        deployment = _deployment_or_404(name)
        data = DeploymentBatchingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            _detail(deployment_batching_set(deployment=deployment, user=request.user, **data.validated_data))
        )


class DeploymentEventsApi(APIView):
    @extend_schema(
        responses=DeploymentEventSerializer(many=True),
        summary="Audit trail of a deployment, newest first",
        parameters=[OpenApiParameter("limit", int, description="at most this many (default 100, max 1000)")],
    )
    def get(self, request, name):
        deployment = _deployment_or_404(name)
        try:
            limit = int(request.query_params.get("limit", 100))
        except ValueError:
            raise ValidationError({"limit": "expected an integer"}) from None
        if not 1 <= limit <= 1000:
            raise ValidationError({"limit": "between 1 and 1000"})
        return Response(
            DeploymentEventSerializer(deployment_events(deployment=deployment, limit=limit), many=True).data
        )


class DeploymentTrafficApi(APIView):
    @extend_schema(
        request=TrafficSerializer,
        responses={200: DeploymentDetailSerializer, 409: ErrorSerializer},
        summary="Set weights by hand (not while a rollout runs)",
    )
    def post(self, request, name):
        deployment = _deployment_or_404(name)
        data = TrafficSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocations = [
            {
                "model_version": _version(
                    deployment, field=f"traffic[{i}].model_version_id", pk=item["model_version_id"]
                ),
                "weight": item["weight"],
                "shadow": item["shadow"],
            }
            for i, item in enumerate(data.validated_data["traffic"])
        ]
        deployment_set_traffic(
            deployment=deployment, allocations=allocations, user=request.user, reason=data.validated_data["reason"]
        )
        return Response(_detail(deployment))


class DeploymentRollbackApi(APIView):
    @extend_schema(
        request=RollbackSerializer,
        responses={200: DeploymentDetailSerializer, 409: ErrorSerializer},
        summary="Roll back to any version of the deployment's model, in one action",
    )
    def post(self, request, name):
        deployment = _deployment_or_404(name)
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = _version(
            deployment,
            field="version",
            pk=data.validated_data.get("model_version_id"),
            number=data.validated_data.get("version"),
        )
        deployment_rollback(
            deployment=deployment, model_version=version, user=request.user, reason=data.validated_data["reason"]
        )
        return Response(_detail(deployment))


class RolloutCreateApi(APIView):
    @extend_schema(
        request=RolloutCreateSerializer,
        responses={201: DeploymentRolloutSerializer, 409: ErrorSerializer},
        summary="Start a staged rollout from the champion to a challenger",
    )
    def post(self, request, name):
        deployment = _deployment_or_404(name)
        data = RolloutCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        challenger = _version(
            deployment,
            field="challenger_version",
            pk=v.get("challenger_version_id"),
            number=v.get("challenger_version"),
        )
        rollout = rollout_create(
            deployment=deployment,
            challenger=challenger,
            stages=v.get("stages"),
            gates=v.get("gates"),
            user=request.user,
            start=v["start"],
            reason=v["reason"],
        )
        return Response(DeploymentRolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RolloutActionApi(APIView):
    @extend_schema(
        request=RolloutActionSerializer,
        responses={200: DeploymentRolloutSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=ROLLOUT_ACTIONS)],
        summary="Start, promote, pause, resume, abort or roll back the deployment's open rollout",
    )
    def post(self, request, name, action):
        if action not in ROLLOUT_ACTIONS:
            raise Http404(f"Unknown rollout action {action!r}.")
        deployment = _deployment_or_404(name)
        data = RolloutActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        stage = data.validated_data.get("stage")
        if action in (RolloutAction.PROMOTE, RolloutAction.ROLLBACK) and stage is None:
            raise ValidationError(
                {"stage": "give the stage index you are acting on, so a double click cannot act twice"}
            )
        rollout = deployment_open_rollout(deployment=deployment)
        if rollout is None:
            return Response({"detail": f"deployment {name!r} has no open rollout"}, status=status.HTTP_409_CONFLICT)
        rollout = rollout_transition(
            rollout=rollout,
            action=action,
            user=request.user,
            expected_stage=stage,
            reason=data.validated_data["reason"],
        )
        return Response(DeploymentRolloutSerializer(rollout).data)
