"""Alert rules and webhooks through the API: staff change them, analysts read, others are refused,
and bad input is a 400 naming the field."""

import pytest

from apps.alerts.models import AlertRule, Webhook

pytestmark = pytest.mark.usefixtures("inline_runs")  # the deployment's versions train in-process

RULES = "/api/v1/alerts/rules/"
WEBHOOKS = "/api/v1/alerts/webhooks/"
RULE = {"deployment": "price-direction", "name": "slow", "kind": "p99_latency", "threshold": 0.5, "duration_minutes": 5}


def test_staff_create_and_change_rules_analysts_only_read_and_outsiders_are_refused(
    deployment, staff_user, staff_api, analyst_api, outsider_api, anon_api
):
    assert analyst_api.post(RULES, RULE, format="json").status_code == 403
    assert outsider_api.get(RULES).status_code == 403 and anon_api.get(RULES).status_code == 401

    created = staff_api.post(RULES, RULE, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["deployment"], body["kind"], body["state"]) == ("price-direction", "p99_latency", "ok")
    assert body["created_by"] == str(staff_user)
    listed = analyst_api.get(RULES, {"deployment": "price-direction"}).json()["results"]
    assert [r["name"] for r in listed] == ["slow"]

    changed = staff_api.patch(f"{RULES}{body['id']}/", {"threshold": 0.8, "enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 0.8 and not changed.json()["enabled"]
    assert analyst_api.patch(f"{RULES}{body['id']}/", {"threshold": 1}, format="json").status_code == 403
    assert analyst_api.get("/api/v1/alerts/events/").status_code == 200


def test_bad_rules_and_webhooks_are_refused_naming_the_field(deployment, staff_api):
    def refused(url, data, field):
        response = staff_api.post(url, data, format="json")
        assert response.status_code == 400 and field in response.json(), (response.status_code, response.json())

    refused(RULES, {**RULE, "kind": "vibes"}, "kind")
    refused(RULES, {**RULE, "deployment": "nowhere"}, "deployment")
    refused(RULES, {**RULE, "kind": "error_rate", "threshold": 5}, "threshold")
    refused(RULES, {**RULE, "threshold": "NaN"}, "threshold")
    refused(RULES, {**RULE, "duration_minutes": -1}, "duration_minutes")
    refused(RULES, {"deployment": "price-direction", "kind": "drift"}, "name")
    assert staff_api.post(RULES, RULE, format="json").status_code == 201
    refused(RULES, RULE, "name")  # the same name twice on one deployment

    refused(WEBHOOKS, {"name": "files", "url": "file:///etc/passwd"}, "url")
    refused(WEBHOOKS, {"name": "ftp", "url": "ftp://example.com/hook"}, "url")
    refused(WEBHOOKS, {"name": "x", "url": "https://hooks.example.com/x", "rules": [999]}, "rules")
    ok = staff_api.post(
        WEBHOOKS,
        {"name": "slack", "url": "https://hooks.example.com/x", "deployments": ["price-direction"]},
        format="json",
    )
    assert ok.status_code == 201 and ok.json()["deployments"] == ["price-direction"]
    assert AlertRule.objects.count() == 1 and Webhook.objects.count() == 1


def test_staff_configure_rules_and_webhooks_in_admin_and_see_events_with_their_deliveries(
    deployment, staff_user, analyst_user
):
    from django.test import Client
    from django.urls import reverse

    from apps.alerts.choices import DeliveryStatus
    from apps.alerts.models import AlertDelivery
    from apps.alerts.services import alert_rule_evaluate

    client = Client()
    client.force_login(staff_user)
    add = reverse("admin:alerts_alertrule_add")
    rule = {
        "deployment": deployment.pk,
        "name": "errors",
        "kind": "error_rate",
        "threshold": "2",
        "duration_minutes": "0",
        "window_minutes": "5",
        "enabled": "on",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
    }
    refused = client.post(add, rule)
    assert refused.status_code == 200 and b"an error rate is a ratio" in refused.content
    assert client.post(add, {**rule, "kind": "no_traffic", "threshold": "0"}).status_code == 302
    refused = client.post(
        reverse("admin:alerts_webhook_add"),
        {"name": "x", "url": "gopher://x", "max_attempts": "3", "retry_backoff_seconds": "1"},
    )
    assert refused.status_code == 200 and b"http:// or https://" in refused.content
    saved = client.post(
        reverse("admin:alerts_webhook_add"),
        {
            "name": "ops",
            "url": "https://hooks.example.com/a",
            "enabled": "on",
            "max_attempts": "3",
            "retry_backoff_seconds": "1",
        },
    )
    assert saved.status_code == 302

    fired = alert_rule_evaluate(rule_id=AlertRule.objects.get().pk)  # nothing served: no traffic fires at once
    AlertDelivery.objects.filter(event=fired).update(
        status=DeliveryStatus.FAILED, attempts=3, last_error="HTTP 503: down"
    )
    listing = client.get(reverse("admin:alerts_alertevent_changelist"), {"kind__exact": "firing"})
    assert listing.status_code == 200 and b"ops: Failed (attempts used up) (3 attempts)" in listing.content
    page = client.get(reverse("admin:alerts_alertevent_change", args=[fired.pk]))
    assert page.status_code == 200 and b"HTTP 503: down" in page.content

    client.force_login(analyst_user)  # analysts read, never change
    assert client.get(reverse("admin:alerts_alertrule_changelist")).status_code == 200
    assert client.post(add, {**rule, "name": "other", "kind": "no_traffic", "threshold": "0"}).status_code == 403
