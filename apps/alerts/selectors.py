"""Reads for alerts: rules, webhooks, events with their deliveries."""

from django.db.models import Prefetch

from .models import AlertDelivery, AlertEvent, AlertRule, Webhook


def alert_rule_list(*, deployment_name: str | None = None):
    rows = AlertRule.objects.select_related("deployment", "created_by")
    return rows.filter(deployment__name=deployment_name) if deployment_name else rows


def webhook_list():
    return Webhook.objects.prefetch_related("rules", "deployments")


def alert_event_list(*, deployment_name: str | None = None, rule_id: int | None = None):
    rows = AlertEvent.objects.select_related("rule__deployment").prefetch_related(
        Prefetch("deliveries", queryset=AlertDelivery.objects.select_related("webhook").order_by("pk"))
    )
    if deployment_name:
        rows = rows.filter(rule__deployment__name=deployment_name)
    if rule_id is not None:
        rows = rows.filter(rule_id=rule_id)
    return rows


def alert_event_summary(event: AlertEvent) -> dict:
    """What the dashboard shows of an event (the REST list and the live push send the same)."""
    rule = event.rule
    return {
        "id": event.pk,
        "rule": rule.name,
        "rule_id": rule.pk,
        "deployment": rule.deployment.name,
        "kind": event.kind,
        "alert_kind": rule.kind,
        "value": event.value,
        "threshold": event.threshold,
        "message": event.message,
        "started_at": event.started_at.isoformat(),
        "created_at": event.created_at.isoformat(),
        "retrain_note": event.retrain_note,
        "deliveries": [
            {"webhook": d.webhook.name, "status": d.status, "attempts": d.attempts, "last_error": d.last_error}
            for d in event.deliveries.all()
        ],
    }


def alert_events_for_run(*, run_id: int) -> list[AlertEvent]:
    """The firing events that started this training run (the delivery timeline names them)."""
    return list(AlertEvent.objects.filter(retrain_run_id=run_id).select_related("rule"))
