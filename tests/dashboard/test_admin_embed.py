"""The widgets embedded in admin pages: placeholder plus the embed bundle, outside the admin form."""

import json

import pytest
from django.test import Client


@pytest.mark.parametrize("who", ["staff_user", "analyst_user"])
def test_the_deployment_admin_page_embeds_the_performance_widget(request, who, rolling_deployment, built_frontend):
    client = Client()
    client.force_login(request.getfixturevalue(who))
    response = client.get(f"/admin/deployments/deployment/{rolling_deployment.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    placeholder = '<div class="mlops-embed" data-widget="model-performance" data-deployment="price-direction"></div>'
    assert placeholder in body
    assert body.index("</form>") < body.index(placeholder)  # Enter in the widget must not submit the form
    embed = json.loads(built_frontend.read_text())["src/embed.jsx"]
    assert f'<script type="module" src="/static/{embed["file"]}"></script>' in body


def test_the_add_page_has_no_widget(staff_user, db):
    client = Client()
    client.force_login(staff_user)
    body = client.get("/admin/deployments/deployment/add/").content.decode()
    assert 'data-widget="model-performance"' not in body and "src/embed" not in body


def test_the_training_run_admin_page_embeds_the_live_log_widget(staff_user, running_run, built_frontend):
    client = Client()
    client.force_login(staff_user)
    response = client.get(f"/admin/training/trainingrun/{running_run.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-widget="training-logs" data-run-id="{running_run.pk}"' in body
    embed = json.loads(built_frontend.read_text())["src/embed.jsx"]
    assert f'<script type="module" src="/static/{embed["file"]}"></script>' in body


def test_the_rollout_page_offers_staff_its_next_steps_through_the_confirmation_page_and_analysts_none(
    staff_user, analyst_user, rolling_deployment
):
    rollout = rolling_deployment.rollouts.get()
    url = f"/admin/deployments/rollout/{rollout.pk}/change/"
    staff = Client()
    staff.force_login(staff_user)
    body = staff.get(url).content.decode()
    for action in ("promote_action", "pause_action", "abort_action", "rollback_action"):
        assert f'form="rollout-action-{action}"' in body, action
    assert 'form="rollout-action-start_action"' not in body  # a running rollout is not started again
    assert 'name="_save"' not in body and 'data-status="running"' in body
    confirm = staff.post("/admin/deployments/rollout/", {"action": "promote_action", "_selected_action": [rollout.pk]})
    assert confirm.status_code == 200 and b'name="confirm"' in confirm.content
    analyst = Client()
    analyst.force_login(analyst_user)
    assert "rollout-action-" not in analyst.get(url).content.decode()
