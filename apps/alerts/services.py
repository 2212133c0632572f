"""Alert rules, their evaluation and the delivery of their events to webhooks.

    ok ──breach──► pending ──breach lasted duration_minutes──► firing  (AlertEvent "firing")
    pending ──no breach──► ok                                   (nothing was ever announced)
    firing ──no breach──► ok                                    (AlertEvent "resolved")

`alert_rule_evaluate` is the only writer of a rule's state: it locks the rule row, so two beat
ticks that overlap take turns and never announce one firing twice. Every event is published on
the dashboard's `alerts` group and queued to each matching webhook on commit; a delivery is
retried with exponential backoff by the housekeeping worker (apps.alerts.tasks) and every failed
attempt is kept on its AlertDelivery row.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.live import ALERTS_GROUP

from .choices import AlertEventKind, AlertKind, AlertState, DeliveryStatus
from .measures import UNITS, breaches, measure
from .models import AlertDelivery, AlertEvent, AlertRule, Webhook, webhook_url_validator

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10


def alert_rule_validate(rule: AlertRule) -> None:
    """ValidationError naming the field."""
    if rule.kind not in AlertKind.values:
        raise ValidationError({"kind": f"must be one of {AlertKind.values}"})
    if rule.threshold is None or not math.isfinite(rule.threshold):
        raise ValidationError({"threshold": "a finite number"})
    if rule.kind == AlertKind.ERROR_RATE and not 0 <= rule.threshold < 1:
        raise ValidationError({"threshold": "an error rate is a ratio: at least 0 and below 1"})
    if rule.kind in (AlertKind.P99_LATENCY, AlertKind.DRIFT, AlertKind.NO_TRAFFIC) and rule.threshold < 0:
        raise ValidationError({"threshold": f"a {rule.kind} threshold cannot be negative"})
    rule.full_clean(exclude=["deployment", "created_by"], validate_unique=False)
    clash = AlertRule.objects.filter(deployment_id=rule.deployment_id, name=rule.name).exclude(pk=rule.pk)
    if clash.exists():
        raise ValidationError({"name": f"deployment {rule.deployment.name} already has a rule named {rule.name!r}"})


@transaction.atomic
def alert_rule_save(*, rule: AlertRule, user=None) -> AlertRule:
    """Validates and saves a rule. A changed condition starts again from OK: a pending breach of the
    old threshold says nothing about the new one (an open firing is resolved first, so receivers
    are not left with an alert that never ends)."""
    alert_rule_validate(rule)
    if rule.pk is None:
        if user is not None and getattr(user, "is_authenticated", False):
            rule.created_by = user
        rule.save()
        return rule
    before = AlertRule.objects.select_for_update().get(pk=rule.pk)
    changed = (before.kind, before.threshold, before.duration_minutes, before.window_minutes, before.enabled) != (
        rule.kind,
        rule.threshold,
        rule.duration_minutes,
        rule.window_minutes,
        rule.enabled,
    )
    rule.state, rule.pending_since = before.state, before.pending_since
    if changed and before.state == AlertState.FIRING:
        _event(
            before,
            AlertEventKind.RESOLVED,
            value=before.last_value,
            now=timezone.now(),
            message="rule changed or disabled",
        )
    if changed:
        rule.state, rule.pending_since = AlertState.OK, None
    rule.save()
    return rule


def webhook_validate(webhook: Webhook) -> None:
    try:
        webhook_url_validator(webhook.url or "")
    except ValidationError:
        raise ValidationError({"url": "an http:// or https:// URL"}) from None
    webhook.full_clean(validate_unique=False)
    if Webhook.objects.filter(name=webhook.name).exclude(pk=webhook.pk).exists():
        raise ValidationError({"name": f"a webhook named {webhook.name!r} exists"})


@transaction.atomic
def webhook_save(*, webhook: Webhook, rules=None, deployments=None) -> Webhook:
    """Validates and saves a webhook; `rules`/`deployments` (when given) replace its filters."""
    webhook_validate(webhook)
    webhook.save()
    if rules is not None:
        webhook.rules.set(rules)
    if deployments is not None:
        webhook.deployments.set(deployments)
    return webhook


def _describe(rule: AlertRule, value: float | None) -> str:
    shown = "no data" if value is None else f"{value:.4g}{UNITS.get(rule.kind, '')}"
    op = "≤" if rule.kind == AlertKind.NO_TRAFFIC else ">"
    return (
        f"{rule.get_kind_display()} on {rule.deployment.name}: {shown} "
        f"(fires at {op} {rule.threshold:g}{UNITS.get(rule.kind, '')} for {rule.duration_minutes} min)"
    )


def _event(rule: AlertRule, kind: str, *, value: float | None, now: datetime, message: str = "") -> AlertEvent:
    started = now
    if kind == AlertEventKind.RESOLVED:
        last_firing = rule.events.filter(kind=AlertEventKind.FIRING).order_by("-created_at", "-pk").first()
        started = last_firing.started_at if last_firing else now
    event = AlertEvent.objects.create(
        rule=rule,
        kind=kind,
        value=value,
        threshold=rule.threshold,
        started_at=started,
        created_at=now,
        message=message or _describe(rule, value),
    )
    for webhook in _webhooks_for(rule):
        delivery = AlertDelivery.objects.create(event=event, webhook=webhook)
        transaction.on_commit(lambda pk=delivery.pk: _dispatch(pk))
    transaction.on_commit(lambda: _publish(event.pk))
    return event


def _webhooks_for(rule: AlertRule):
    return (
        Webhook.objects.filter(enabled=True)
        .filter(Q(rules__isnull=True) | Q(rules=rule))
        .filter(Q(deployments__isnull=True) | Q(deployments=rule.deployment_id))
        .distinct()
    )


@transaction.atomic
def alert_rule_evaluate(*, rule_id: int, now: datetime | None = None) -> AlertEvent | None:
    """One check of one rule at `now`; returns the event it wrote, if any."""
    now = now or timezone.now()
    rule = AlertRule.objects.select_for_update().select_related("deployment").filter(pk=rule_id, enabled=True).first()
    if rule is None:
        return None
    value = measure(kind=rule.kind, deployment=rule.deployment, window_minutes=rule.window_minutes, now=now)
    breach = breaches(kind=rule.kind, value=value, threshold=rule.threshold)
    event = None
    if breach and rule.state == AlertState.OK:
        rule.state, rule.pending_since = AlertState.PENDING, now
    if (
        breach
        and rule.state == AlertState.PENDING
        and now - rule.pending_since >= timedelta(minutes=rule.duration_minutes)
    ):
        rule.state = AlertState.FIRING
        event = _event(rule, AlertEventKind.FIRING, value=value, now=now)
    elif not breach and rule.state == AlertState.FIRING:
        event = _event(rule, AlertEventKind.RESOLVED, value=value, now=now)
        rule.state, rule.pending_since = AlertState.OK, None
    elif not breach:
        rule.state, rule.pending_since = AlertState.OK, None
    rule.last_value, rule.last_evaluated_at = value, now
    rule.save(update_fields=["state", "pending_since", "last_value", "last_evaluated_at"])
    return event


def alert_rules_evaluate(*, now: datetime | None = None) -> dict:
    """The beat task's body: every enabled rule once, each in its own transaction so one rule's
    failure (a deployment removed meanwhile, a bad profile) does not stop the others."""
    now = now or timezone.now()
    out = {"rules": 0, "events": 0, "errors": 0}
    for rule_id in AlertRule.objects.filter(enabled=True).values_list("pk", flat=True):
        out["rules"] += 1
        try:
            out["events"] += alert_rule_evaluate(rule_id=rule_id, now=now) is not None
        except Exception:
            logger.exception("alert rule %s could not be evaluated", rule_id)
            out["errors"] += 1
    return out


def _publish(event_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    try:
        async_to_sync(get_channel_layer().group_send)(ALERTS_GROUP, {"type": "alert.event", "event": event_id})
    except Exception:  # a dashboard push must never undo a stored event
        logger.warning("alert event %s not pushed to dashboards", event_id, exc_info=True)


def _dispatch(delivery_id: int) -> None:
    try:
        # By task name (routed to housekeeping by CELERY_TASK_ROUTES): apps.alerts.tasks imports these
        # services, so they never import it back.
        current_app.send_task("alerts.deliver", args=[delivery_id], ignore_result=True)
    except Exception as exc:  # the broker is down: say so on the row instead of losing it silently
        logger.exception("alert delivery %s could not be queued", delivery_id)
        AlertDelivery.objects.filter(pk=delivery_id).update(last_error=f"not queued: {exc}")


def _iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else "0001-01-01T00:00:00Z"


def webhook_payload(event: AlertEvent) -> dict:
    """One body that Slack and Teams incoming webhooks read (`text`) and an Alertmanager-style
    receiver reads (its webhook format: `version`, `status`, `alerts` with `labels`, `annotations`,
    `startsAt`, `endsAt`); endsAt stays Alertmanager's zero time while the alert fires."""
    rule = event.rule
    status = "firing" if event.kind == AlertEventKind.FIRING else "resolved"
    labels = {"alertname": rule.name, "deployment": rule.deployment.name, "kind": rule.kind, "severity": "warning"}
    annotations = {
        "summary": event.message,
        "value": "" if event.value is None else f"{event.value:.6g}",
        "threshold": f"{event.threshold:g}",
    }
    if event.retrain_note:
        annotations["retrain"] = event.retrain_note
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(event.started_at),
        "endsAt": _iso(event.created_at) if status == "resolved" else _iso(None),
        "fingerprint": f"alert-rule-{rule.pk}",
    }
    icon = ":rotating_light:" if status == "firing" else ":white_check_mark:"
    return {
        "text": f"{icon} [{status.upper()}] {rule.name}: {event.message}",
        "version": "4",
        "status": status,
        "receiver": "mlops-portal",
        "groupLabels": {"alertname": rule.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert["startsAt"],
        "endsAt": alert["endsAt"],
        "alerts": [alert],
    }


def alert_delivery_attempt(*, delivery_id: int) -> tuple[AlertDelivery | None, float | None]:
    """POSTs the event once. Returns (delivery, seconds to wait before the next attempt) — None when
    there is nothing more to do: delivered, attempts used up, or the row is gone."""
    delivery = AlertDelivery.objects.select_related("webhook", "event__rule__deployment").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return delivery, None
    webhook = delivery.webhook
    body = json.dumps(webhook_payload(delivery.event)).encode()
    request = urllib.request.Request(
        webhook.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mlops-portal-alerts"},
    )
    delivery.attempts += 1
    delivery.last_attempt_at = timezone.now()
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            delivery.last_status_code = response.status
    except urllib.error.HTTPError as exc:
        delivery.last_status_code = exc.code
        error = f"HTTP {exc.code}: {exc.read(300).decode(errors='replace')}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        delivery.last_status_code = None
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    wait = None
    if not error:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, timezone.now()
    else:
        delivery.last_error = error[:1000]
        delivery.errors = [
            *delivery.errors,
            {"at": delivery.last_attempt_at.isoformat(), "attempt": delivery.attempts, "error": error[:300]},
        ]
        if delivery.attempts >= webhook.max_attempts:
            delivery.status = DeliveryStatus.FAILED
        else:
            wait = webhook.retry_backoff_seconds * 2 ** (delivery.attempts - 1)
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "errors",
            "last_attempt_at",
            "delivered_at",
        ]
    )
    return delivery, wait
