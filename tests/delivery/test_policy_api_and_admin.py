"""Delivery policies through the API and admin: staff change them, analysts read, others are refused."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.delivery.models import DeliveryPolicy

pytestmark = pytest.mark.usefixtures("inline_runs")

URL = "/api/v1/delivery/policies/price-direction/"


def test_a_deployment_has_no_policy_until_staff_turn_delivery_on(deployment, staff_api, analyst_api, outsider_api):
    assert analyst_api.get(URL).status_code == 404 and not DeliveryPolicy.objects.exists()
    assert analyst_api.put(URL, {"auto_challenge": True}, format="json").status_code == 403
    assert outsider_api.get(URL).status_code == 403

    created = staff_api.put(URL, {"auto_challenge": True, "min_improvement": 0.02}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["registered_model"], body["metric"], body["when_rollout_open"], body["stages"]) == (
        "price-direction",
        "",
        "queue",
        None,
    )
    changed = staff_api.put(
        URL, {"when_rollout_open": "replace", "stages": [{"percent": 25}, {"percent": 100}]}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["auto_challenge"] is True
    assert changed.json()["stages"][0] == {
        "percent": 25.0,
        "min_duration_s": 0.0,
        "min_predictions": 0,
        "min_feedback": 0,
    }
    listed = analyst_api.get("/api/v1/delivery/policies/").json()
    assert [p["deployment"] for p in listed["results"]] == ["price-direction"]


BAD_POLICIES = [
    ({"metric": "rmse"}, "metric"),
    ({"stages": [{"percent": 50}]}, "stages"),
    ({"stages": [{"percent": 150}]}, "stages[0].percent"),
    ({"gates": {"alpha": 2}}, "gates.alpha"),
    ({"when_rollout_open": "later"}, "when_rollout_open"),
    ({"min_improvement": "lots"}, "min_improvement"),
]


def test_bad_policies_are_refused_naming_the_field(deployment, staff_api):
    # One deployment for every case: each refusal must leave no policy behind for the next.
    for body, field in BAD_POLICIES:
        answer = staff_api.put(URL, body, format="json")
        assert answer.status_code == 400 and field in answer.json(), (body, answer.json())
        assert not DeliveryPolicy.objects.exists()


def test_unknown_deployments_and_evaluations_are_404(db, staff_api):
    assert staff_api.put("/api/v1/delivery/policies/nope/", {}, format="json").status_code == 404
    assert staff_api.get("/api/v1/delivery/deployments/nope/timeline").status_code == 404
    assert staff_api.get("/api/v1/delivery/evaluations/12345/").status_code == 404


def test_the_policy_admin_shows_the_timeline_and_refuses_a_bad_metric(deployment, challenger, staff_user):
    from apps.deployments.services.rollouts import rollout_create

    rollout_create(deployment=deployment, challenger=challenger, user=staff_user, start=True, reason="by hand")
    client = Client()
    client.force_login(staff_user)
    add = reverse("admin:delivery_deliverypolicy_add")
    refused = client.post(
        add,
        {
            "deployment": deployment.pk,
            "metric": "rmse",
            "min_improvement": "0",
            "min_evaluation_rows": "20",
            "when_rollout_open": "queue",
        },
    )
    assert refused.status_code == 200 and b"is not a classification metric" in refused.content
    saved = client.post(
        add,
        {
            "deployment": deployment.pk,
            "auto_challenge": "on",
            "metric": "accuracy",
            "min_improvement": "0",
            "min_evaluation_rows": "20",
            "when_rollout_open": "queue",
        },
    )
    assert saved.status_code == 302, saved.content[:2000]
    policy = DeliveryPolicy.objects.get()
    assert policy.updated_by == staff_user and policy.registered_model == deployment.registered_model
    page = client.get(reverse("admin:delivery_deliverypolicy_change", args=[policy.pk]))
    assert page.status_code == 200
    assert (
        str(challenger).encode() in page.content and b"rollout started" in page.content and b"by hand" in page.content
    )
