from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html_join

from apps.core.admin_readonly import ReadOnlyAdmin, ReadOnlyInline

from .models import AlertDelivery, AlertEvent, AlertRule, Webhook
from .services import alert_rule_save, alert_rule_validate, webhook_save, webhook_validate


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["deployment", "name", "kind", "threshold", "duration_minutes", "window_minutes", "enabled"]

    def _post_clean(self):
        super()._post_clean()
        if self.instance.deployment_id is None or self.errors:
            return
        try:
            alert_rule_validate(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


class WebhookForm(forms.ModelForm):
    class Meta:
        model = Webhook
        fields = ["name", "url", "enabled", "rules", "deployments", "max_attempts", "retry_backoff_seconds"]

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            webhook_validate(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


class AlertEventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ("created_at", "kind", "value", "threshold", "message", "retrain_note")
    readonly_fields = fields
    ordering = ("-created_at",)
    show_change_link = True


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = (
        "name",
        "deployment",
        "kind",
        "threshold",
        "duration_minutes",
        "window_minutes",
        "enabled",
        "state",
        "last_value",
        "last_evaluated_at",
    )
    list_filter = ("kind", "state", "enabled", "deployment")
    search_fields = ("name", "deployment__name")
    readonly_fields = (
        "state",
        "pending_since",
        "last_value",
        "last_evaluated_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = [AlertEventInline]

    def save_model(self, request, obj, form, change):
        alert_rule_save(rule=obj, user=request.user)


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ("name", "url", "enabled", "max_attempts", "retry_backoff_seconds")
    list_filter = ("enabled",)
    filter_horizontal = ("rules", "deployments")

    def save_model(self, request, obj, form, change):
        webhook_save(webhook=obj)


class AlertDeliveryInline(ReadOnlyInline):
    model = AlertDelivery
    fields = ("webhook", "status", "attempts", "last_status_code", "last_error", "last_attempt_at", "delivered_at")
    readonly_fields = fields


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    deletable = True
    list_display = ("created_at", "rule", "deployment", "kind", "value", "threshold", "delivery_status")
    list_filter = (
        "kind",
        "rule__kind",
        "rule__deployment",
        "deliveries__status",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("rule__name", "rule__deployment__name", "message")
    readonly_fields = (
        "rule",
        "kind",
        "value",
        "threshold",
        "started_at",
        "created_at",
        "message",
        "retrain_run",
        "retrain_note",
    )
    inlines = [AlertDeliveryInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("rule__deployment").prefetch_related("deliveries__webhook")

    @admin.display(description="Deployment", ordering="rule__deployment__name")
    def deployment(self, obj):
        return obj.rule.deployment.name

    @admin.display(description="Deliveries")
    def delivery_status(self, obj):
        deliveries = list(obj.deliveries.all())
        if not deliveries:
            return "-"
        return format_html_join(
            ", ", "{}: {} ({} attempts)", ((d.webhook.name, d.get_status_display(), d.attempts) for d in deliveries)
        )


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    deletable = True
    list_display = ("id", "event", "webhook", "status", "attempts", "last_status_code", "last_error", "last_attempt_at")
    list_filter = ("status", "webhook")
    readonly_fields = (
        "event",
        "webhook",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "errors",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    )
