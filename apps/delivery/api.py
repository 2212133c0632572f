"""REST for delivery: analysts read, ML Staff change (the default IsAnalystOrStaff permission)."""

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import Pagination

from . import selectors
from .choices import WhenRolloutOpen
from .models import CandidateEvaluation, DeliveryPolicy
from .services import delivery_policy_save

POLICY_FIELDS = [
    "auto_challenge",
    "metric",
    "min_improvement",
    "min_evaluation_rows",
    "stages",
    "gates",
    "when_rollout_open",
]


class DeliveryPolicySerializer(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment.name", read_only=True)
    registered_model = serializers.CharField(source="registered_model.name", read_only=True)
    updated_by = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = DeliveryPolicy
        fields = ["id", "deployment", "registered_model", *POLICY_FIELDS, "updated_by", "created_at", "updated_at"]


class DeliveryPolicyInputSerializer(serializers.Serializer):
    """Every field optional: what is left out keeps its current (or default) value."""

    auto_challenge = serializers.BooleanField(required=False)
    metric = serializers.CharField(required=False, allow_blank=True, max_length=50)
    min_improvement = serializers.FloatField(required=False)
    min_evaluation_rows = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    stages = serializers.JSONField(required=False, allow_null=True)
    gates = serializers.JSONField(required=False, allow_null=True)
    when_rollout_open = serializers.ChoiceField(choices=WhenRolloutOpen.choices, required=False)


class CandidateEvaluationSerializer(serializers.ModelSerializer):
    deployment = serializers.CharField(source="policy.deployment.name", read_only=True)
    candidate = serializers.CharField(read_only=True)
    candidate_id = serializers.IntegerField(read_only=True)
    champion = serializers.CharField(read_only=True, allow_null=True)
    champion_id = serializers.IntegerField(read_only=True, allow_null=True)
    dataset_version = serializers.CharField(read_only=True, allow_null=True)
    rollout = serializers.IntegerField(source="rollout_id", read_only=True, allow_null=True)
    improvement = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = CandidateEvaluation
        fields = [
            "id",
            "deployment",
            "candidate",
            "candidate_id",
            "champion",
            "champion_id",
            "dataset_version",
            "trigger",
            "status",
            "action",
            "metric",
            "min_improvement",
            "candidate_value",
            "champion_value",
            "improvement",
            "candidate_metrics",
            "champion_metrics",
            "window",
            "reason",
            "rollout",
            "dispatches",
            "created_at",
            "started_at",
            "finished_at",
        ]


class CandidateEvaluationDetailSerializer(CandidateEvaluationSerializer):
    class Meta(CandidateEvaluationSerializer.Meta):
        fields = [*CandidateEvaluationSerializer.Meta.fields, "log"]


class TimelineStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True)
    actor = serializers.CharField()
    what = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)


class TimelineChainSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    version = serializers.IntegerField()
    candidate = serializers.CharField()
    outcome = serializers.CharField()
    steps = TimelineStepSerializer(many=True)


class ScheduleTickInputSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False)


class ScheduleTickSerializer(serializers.Serializer):
    schedule = serializers.IntegerField()
    outcome = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    run = serializers.IntegerField(allow_null=True)


class DeliveryPolicyListApi(GenericAPIView):
    serializer_class = DeliveryPolicySerializer
    pagination_class = Pagination

    @extend_schema(operation_id="delivery_policies_list", responses=DeliveryPolicySerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.delivery_policy_list())
        return self.get_paginated_response(DeliveryPolicySerializer(page, many=True).data)


class DeliveryPolicyApi(APIView):
    def _deployment(self, name: str):
        return selectors.deployment_for_timeline(name=name)

    @extend_schema(
        responses=DeliveryPolicySerializer, summary="A deployment's delivery policy (404 when it has none: off)"
    )
    def get(self, request, name: str):
        policy = selectors.delivery_policy_get(deployment_name=name)
        if policy is None:
            self._deployment(name)
            raise Http404(f"Deployment {name!r} has no delivery policy: new versions reach it only by hand.")
        return Response(DeliveryPolicySerializer(policy).data)

    @extend_schema(
        request=DeliveryPolicyInputSerializer,
        responses={200: DeliveryPolicySerializer, 201: DeliveryPolicySerializer},
        summary="Create or change a deployment's delivery policy (fields left out keep their value)",
    )
    def put(self, request, name: str):
        deployment = self._deployment(name)
        serializer = DeliveryPolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = selectors.delivery_policy_get(deployment_name=name)
        created = policy is None
        if created:
            policy = DeliveryPolicy(deployment=deployment, registered_model_id=deployment.registered_model_id)
        for key, value in serializer.validated_data.items():
            setattr(policy, key, value)
        delivery_policy_save(policy=policy, user=request.user)
        return Response(
            DeliveryPolicySerializer(selectors.delivery_policy_get(deployment_name=name)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CandidateEvaluationListApi(GenericAPIView):
    serializer_class = CandidateEvaluationSerializer
    pagination_class = Pagination

    @extend_schema(
        operation_id="delivery_evaluations_list",
        responses=CandidateEvaluationSerializer(many=True),
        parameters=[OpenApiParameter("deployment", str, description="Only this deployment's evaluations")],
    )
    def get(self, request):
        rows = selectors.candidate_evaluation_list(deployment_name=request.query_params.get("deployment") or None)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CandidateEvaluationSerializer(page, many=True).data)


class CandidateEvaluationDetailApi(APIView):
    @extend_schema(responses=CandidateEvaluationDetailSerializer, summary="One evaluation with its log")
    def get(self, request, pk: int):
        evaluation = selectors.candidate_evaluation_list().filter(pk=pk).first()
        if evaluation is None:
            raise Http404(f"No evaluation {pk}.")
        return Response(CandidateEvaluationDetailSerializer(evaluation).data)


class DeliveryTimelineApi(APIView):
    @extend_schema(
        responses=TimelineChainSerializer(many=True),
        summary="Dataset version → run → evaluation → version → rollout → promotion or rollback",
    )
    def get(self, request, name: str):
        deployment = selectors.deployment_for_timeline(name=name)
        return Response(selectors.delivery_timeline(deployment=deployment))


class ScheduleTickApi(APIView):
    @extend_schema(
        request=ScheduleTickInputSerializer,
        responses={200: ScheduleTickSerializer, 201: ScheduleTickSerializer},
        summary="Run a retraining schedule's tick now; force retrains even when nothing changed",
    )
    def post(self, request, pk: int):
        from apps.training.models import TrainingSchedule
        from apps.training.services.schedules import experiment_retrain_scheduled

        schedule = TrainingSchedule.objects.filter(pk=pk).first()
        if schedule is None:
            raise Http404(f"No training schedule {pk}.")
        serializer = ScheduleTickInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not schedule.enabled:
            raise ValidationError({"schedule": f"schedule {schedule.name} is disabled."})
        run = experiment_retrain_scheduled(
            experiment_id=schedule.experiment_id, schedule_id=schedule.pk, force=serializer.validated_data["force"]
        )
        schedule.refresh_from_db()
        return Response(
            {
                "schedule": schedule.pk,
                "outcome": schedule.last_tick_outcome,
                "reason": schedule.last_tick_reason,
                "run": run.pk if run else None,
            },
            status=status.HTTP_201_CREATED if run else status.HTTP_200_OK,
        )
