"""REST for alerts: analysts read, ML Staff change (the default IsAnalystOrStaff permission)."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import Pagination

from . import selectors
from .choices import AlertKind
from .models import AlertRule, Webhook
from .services import alert_rule_save, webhook_save

RULE_FIELDS = ["name", "kind", "threshold", "duration_minutes", "window_minutes", "enabled"]


class AlertRuleSerializer(serializers.ModelSerializer):
    deployment = serializers.CharField(source="deployment.name", read_only=True)
    created_by = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "deployment",
            *RULE_FIELDS,
            "state",
            "pending_since",
            "last_value",
            "last_evaluated_at",
            "created_by",
            "created_at",
            "updated_at",
        ]


class AlertRuleInputSerializer(serializers.Serializer):
    """On create `deployment`, `name`, `kind` and `threshold` are required; on change every field
    left out keeps its value."""

    deployment = serializers.CharField(required=False, max_length=100)
    name = serializers.CharField(required=False, max_length=100)
    kind = serializers.ChoiceField(choices=AlertKind.choices, required=False)
    threshold = serializers.FloatField(required=False)
    duration_minutes = serializers.IntegerField(required=False, min_value=0, max_value=24 * 60)
    window_minutes = serializers.IntegerField(required=False, min_value=1, max_value=24 * 60)
    enabled = serializers.BooleanField(required=False)


class WebhookSerializer(serializers.ModelSerializer):
    rules = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    deployments = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Webhook
        fields = [
            "id",
            "name",
            "url",
            "enabled",
            "rules",
            "deployments",
            "max_attempts",
            "retry_backoff_seconds",
            "created_at",
            "updated_at",
        ]


class WebhookInputSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    url = serializers.CharField(required=False, max_length=500)
    enabled = serializers.BooleanField(required=False)
    rules = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    deployments = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    retry_backoff_seconds = serializers.FloatField(required=False, min_value=0.1, max_value=3600)


class AlertDeliverySerializer(serializers.Serializer):
    webhook = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)


class AlertEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    rule_id = serializers.IntegerField()
    deployment = serializers.CharField()
    kind = serializers.CharField()
    alert_kind = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField()
    message = serializers.CharField()
    started_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    retrain_note = serializers.CharField(allow_blank=True)
    deliveries = AlertDeliverySerializer(many=True)


def _deployment(name: str):
    from apps.deployments.selectors import deployment_get

    deployment = deployment_get(name=name)
    if deployment is None:
        raise serializers.ValidationError({"deployment": [f"no deployment named {name!r}"]})
    return deployment


def _apply_rule(rule: AlertRule, data: dict, user) -> AlertRule:
    for key in RULE_FIELDS:
        if key in data:
            setattr(rule, key, data[key])
    return alert_rule_save(rule=rule, user=user)


class AlertRuleListApi(GenericAPIView):
    serializer_class = AlertRuleSerializer
    pagination_class = Pagination

    @extend_schema(
        operation_id="alert_rules_list",
        responses=AlertRuleSerializer(many=True),
        parameters=[OpenApiParameter("deployment", str, description="Only this deployment's rules")],
    )
    def get(self, request):
        page = self.paginate_queryset(
            selectors.alert_rule_list(deployment_name=request.query_params.get("deployment") or None)
        )
        return self.get_paginated_response(AlertRuleSerializer(page, many=True).data)

    @extend_schema(
        request=AlertRuleInputSerializer, responses={201: AlertRuleSerializer}, summary="Create an alert rule"
    )
    def post(self, request):
        serializer = AlertRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        missing = {
            key: ["this field is required."] for key in ("deployment", "name", "kind", "threshold") if key not in data
        }
        if missing:
            raise serializers.ValidationError(missing)
        rule = _apply_rule(AlertRule(deployment=_deployment(data["deployment"])), data, request.user)
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleApi(APIView):
    def _rule(self, pk: int) -> AlertRule:
        rule = selectors.alert_rule_list().filter(pk=pk).first()
        if rule is None:
            raise Http404(f"No alert rule {pk}.")
        return rule

    @extend_schema(responses=AlertRuleSerializer, summary="One alert rule with its current state")
    def get(self, request, pk: int):
        return Response(AlertRuleSerializer(self._rule(pk)).data)

    @extend_schema(
        request=AlertRuleInputSerializer,
        responses=AlertRuleSerializer,
        summary="Change an alert rule (fields left out keep their value; the deployment stays)",
    )
    def patch(self, request, pk: int):
        rule = self._rule(pk)
        serializer = AlertRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if (
            "deployment" in serializer.validated_data
            and serializer.validated_data["deployment"] != rule.deployment.name
        ):
            raise serializers.ValidationError({"deployment": ["a rule stays on its deployment; create another"]})
        return Response(AlertRuleSerializer(_apply_rule(rule, serializer.validated_data, request.user)).data)

    @extend_schema(responses={204: None}, summary="Delete an alert rule and its events")
    def delete(self, request, pk: int):
        self._rule(pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _apply_webhook(webhook: Webhook, data: dict) -> Webhook:
    from apps.deployments.models import Deployment

    for key in ("name", "url", "enabled", "max_attempts", "retry_backoff_seconds"):
        if key in data:
            setattr(webhook, key, data[key])
    rules = deployments = None
    if "rules" in data:
        rules = list(AlertRule.objects.filter(pk__in=data["rules"]))
        unknown = sorted(set(data["rules"]) - {r.pk for r in rules})
        if unknown:
            raise serializers.ValidationError({"rules": [f"no alert rule {unknown}"]})
    if "deployments" in data:
        deployments = list(Deployment.objects.filter(name__in=data["deployments"]))
        unknown = sorted(set(data["deployments"]) - {d.name for d in deployments})
        if unknown:
            raise serializers.ValidationError({"deployments": [f"no deployment named {unknown}"]})
    return webhook_save(webhook=webhook, rules=rules, deployments=deployments)


class WebhookListApi(GenericAPIView):
    serializer_class = WebhookSerializer
    pagination_class = Pagination

    @extend_schema(operation_id="alert_webhooks_list", responses=WebhookSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.webhook_list())
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookSerializer}, summary="Add a webhook")
    def post(self, request):
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        missing = {key: ["this field is required."] for key in ("name", "url") if key not in serializer.validated_data}
        if missing:
            raise serializers.ValidationError(missing)
        webhook = _apply_webhook(Webhook(), serializer.validated_data)
        return Response(WebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookApi(APIView):
    def _webhook(self, pk: int) -> Webhook:
        webhook = selectors.webhook_list().filter(pk=pk).first()
        if webhook is None:
            raise Http404(f"No webhook {pk}.")
        return webhook

    @extend_schema(responses=WebhookSerializer, summary="One webhook")
    def get(self, request, pk: int):
        return Response(WebhookSerializer(self._webhook(pk)).data)

    @extend_schema(
        request=WebhookInputSerializer,
        responses=WebhookSerializer,
        summary="Change a webhook (fields left out keep their value)",
    )
    def patch(self, request, pk: int):
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = _apply_webhook(self._webhook(pk), serializer.validated_data)
        return Response(WebhookSerializer(selectors.webhook_list().get(pk=webhook.pk)).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook")
    def delete(self, request, pk: int):
        self._webhook(pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertEventListApi(GenericAPIView):
    serializer_class = AlertEventSerializer
    pagination_class = Pagination

    @extend_schema(
        operation_id="alert_events_list",
        responses=AlertEventSerializer(many=True),
        parameters=[
            OpenApiParameter("deployment", str, description="Only this deployment's events"),
            OpenApiParameter("rule", int, description="Only this rule's events"),
        ],
    )
    def get(self, request):
        raw_rule = request.query_params.get("rule")
        if raw_rule is not None and not raw_rule.isdigit():
            raise serializers.ValidationError({"rule": [f"must be a rule id, got {raw_rule[:40]!r}"]})
        rows = selectors.alert_event_list(
            deployment_name=request.query_params.get("deployment") or None,
            rule_id=int(raw_rule) if raw_rule is not None else None,
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([selectors.alert_event_summary(event) for event in page])
