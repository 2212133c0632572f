"""An alert rule on real rollups fires after its duration, reaches a webhook receiver started here
through the real housekeeping worker (retried with backoff when the receiver answers 500), and
resolves once its breach ends."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.choices import AlertEventKind, AlertKind, AlertState, DeliveryStatus
from apps.alerts.models import AlertDelivery, AlertRule, Webhook
from apps.alerts.services import alert_rule_evaluate, alert_rule_save, webhook_save
from tests.deployments.conftest import wait_until
from tests.monitoring.traffic import store_traffic


def delivered(event) -> AlertDelivery | None:
    return AlertDelivery.objects.filter(event=event).exclude(status=DeliveryStatus.PENDING).first()


@pytest.mark.worker
def test_an_error_rate_rule_fires_after_its_duration_is_retried_to_the_webhook_and_resolves(
    celery_worker, deployment, champion, receiver
):
    hook = receiver(answers=[500])
    webhook_save(webhook=Webhook(name="ops", url=hook.url, retry_backoff_seconds=0.3, max_attempts=3))
    rule = alert_rule_save(
        rule=AlertRule(
            deployment=deployment,
            name="server errors",
            kind=AlertKind.ERROR_RATE,
            threshold=0.01,
            duration_minutes=2,
            window_minutes=10,
        )
    )
    # 300 answers over the two minutes before the first check, about 5% of them server errors.
    now = timezone.now()
    store_traffic(deployment, champion, start=now.timestamp() - 240, seconds=120, requests=300, seed=3)

    # The breach is pending for its duration: no event, nothing sent.
    assert alert_rule_evaluate(rule_id=rule.pk, now=now) is None
    assert alert_rule_evaluate(rule_id=rule.pk, now=now + timedelta(minutes=1)) is None
    rule.refresh_from_db()
    assert rule.state == AlertState.PENDING and rule.pending_since == now and 0.01 < rule.last_value < 0.2

    fired = alert_rule_evaluate(rule_id=rule.pk, now=now + timedelta(minutes=2))
    assert fired.kind == AlertEventKind.FIRING and fired.started_at == now + timedelta(minutes=2)
    assert fired.value == rule.last_value and fired.threshold == 0.01

    # The receiver's first answer is a 500: the worker tries again after the backoff and succeeds.
    delivery = wait_until(lambda: delivered(fired), timeout=20)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2, delivery.errors
    assert delivery.errors[0]["attempt"] == 1 and "HTTP 500" in delivery.errors[0]["error"]
    assert [code for code, _ in hook.received] == [500, 200]
    body = hook.received[1][1]
    assert body["status"] == "firing" and "server errors" in body["text"]  # Slack / Teams read `text`
    alert = body["alerts"][0]
    assert alert["labels"] == {
        "alertname": "server errors",
        "deployment": "price-direction",
        "kind": "error_rate",
        "severity": "warning",
    }
    assert alert["startsAt"].startswith((now + timedelta(minutes=2)).isoformat()[:19])
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["annotations"]["threshold"] == "0.01"

    # Twenty minutes on, the window holds no traffic: the breach has ended and the alert resolves.
    resolved = alert_rule_evaluate(rule_id=rule.pk, now=now + timedelta(minutes=30))
    assert resolved.kind == AlertEventKind.RESOLVED and resolved.value is None
    assert resolved.started_at == fired.started_at
    delivery = wait_until(lambda: delivered(resolved), timeout=20)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    body = hook.received[2][1]
    assert body["status"] == "resolved" and body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    rule.refresh_from_db()
    assert rule.state == AlertState.OK and rule.pending_since is None
    assert len(hook.received) == 3  # each event delivered once
