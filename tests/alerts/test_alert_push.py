"""A firing alert reaches the dashboard socket live, through the real Redis channel layer."""

import pytest
from asgiref.sync import sync_to_async

from apps.alerts.choices import AlertKind
from apps.alerts.models import AlertRule
from apps.alerts.services import alert_rule_evaluate, alert_rule_save
from tests.dashboard.test_consumer import receive_until, run_scenario, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("inline_runs")]


def test_a_firing_alert_is_pushed_to_the_dashboard_as_the_event_list_shows_it(deployment, analyst_user):
    rule = alert_rule_save(
        rule=AlertRule(
            deployment=deployment,
            name="silence",
            kind=AlertKind.NO_TRAFFIC,
            threshold=0,
            duration_minutes=0,
            window_minutes=5,
        )
    )

    async def scenario(comm):
        await sync_to_async(alert_rule_evaluate)(rule_id=rule.pk)  # commits, then publishes
        return await receive_until(comm, "alert")

    message = run_scenario(session_cookie(analyst_user), scenario)
    alert = message["alert"]
    assert (alert["rule"], alert["deployment"], alert["kind"], alert["value"]) == (
        "silence",
        "price-direction",
        "firing",
        0.0,
    )
    assert "No traffic" in alert["message"] and alert["deliveries"] == []
