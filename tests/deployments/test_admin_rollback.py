"""Admin: the rollback form lists each version with its metrics, the one serving now and when each
served; a rollout's page shows its timeline of events in order, with who acted and why."""

import re

import pytest

from apps.deployments.choices import EventKind, RolloutAction, RolloutStatus
from apps.deployments.models import Rollout
from apps.deployments.services.model_deployment_service import rollout_create, rollout_transition
from apps.registry.models import ModelVersion

STAGES = [{"percent": 10}, {"percent": 100}]


@pytest.fixture
def completed_rollout(deployment, challenger, staff_user):
    """The challenger took over through a two-stage rollout: it serves now, the champion served before."""
    rollout = rollout_create(deployment=deployment, challenger=challenger, stages=STAGES, user=staff_user, start=True)
    rollout_transition(
        rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, reason="looks good", expected_stage=0
    )
    rollout_transition(
        rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, reason="all in", expected_stage=1
    )
    return Rollout.objects.get(pk=rollout.pk)


def _row(html: str, version: int) -> str:
    return re.search(rf'<tr data-version="{version}"[^>]*>(.*?)</tr>', html, re.S).group(0)


def test_the_rollback_form_lists_each_version_with_its_metrics_and_the_one_serving_now(
    completed_rollout, champion, challenger, staff_user, client
):
    client.force_login(staff_user)
    page = client.post(
        "/admin/deployments/deployment/",
        {"action": "rollback_action", "_selected_action": [completed_rollout.deployment_id]},
    )
    html = page.content.decode()
    assert page.status_code == 200 and 'id="rollback-versions"' in html
    serving, previous = _row(html, challenger.version), _row(html, champion.version)
    assert 'class="portal-serving"' in serving and "100% (champion)" in serving and "since" in serving
    assert 'class="portal-serving"' not in previous and " – " in previous
    accuracy = ModelVersion.objects.get(pk=champion.pk).metrics["val"]["accuracy"]
    assert "accuracy (val)" in html and f">{accuracy:.4g}<" in previous
    # Nothing chosen: the same page, the error once beside the list, nothing moved.
    again = client.post(
        "/admin/deployments/deployment/",
        {"action": "rollback_action", "_selected_action": [completed_rollout.deployment_id], "confirm": "yes"},
    )
    assert again.status_code == 200 and again.content.decode().count("Choose the version to roll back to.") == 1
    done = client.post(
        "/admin/deployments/deployment/",
        {
            "action": "rollback_action",
            "_selected_action": [completed_rollout.deployment_id],
            "confirm": "yes",
            "model_version": champion.pk,
            "reason": "challenger drifts",
        },
    )
    assert done.status_code == 302
    deployment = completed_rollout.deployment
    assert list(deployment.versions.filter(weight__gt=0).values_list("model_version_id", flat=True)) == [champion.pk]


def test_a_rollout_page_shows_its_timeline_in_order_with_actor_and_reason(completed_rollout, analyst_user, client):
    client.force_login(analyst_user)
    html = client.get(f"/admin/deployments/rollout/{completed_rollout.pk}/change/").content.decode()
    table = html[html.index('id="rollout-timeline"') :]
    table = table[: table.index("</table>")]
    kinds = re.findall(r'<tr data-kind="(\w+)">', table)
    assert kinds == [
        EventKind.ROLLOUT_CREATED,
        EventKind.ROLLOUT_STARTED,
        EventKind.STAGE_ADVANCED,
        EventKind.ROLLOUT_COMPLETED,
    ]
    assert completed_rollout.status == RolloutStatus.COMPLETED
    assert table.index("looks good") < table.index("all in") and "staff" in table
    assert ">10%<" in table and ">100%<" in table
