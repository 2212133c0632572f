"""The management API and admin: who may read and act, validation, conflicts, the audit trail."""

import pytest

from apps.deployments.choices import EventKind, RolloutStatus
from apps.deployments.models import Deployment, DeploymentEvent, Rollout

BASE = "/api/v1/deployments/"
DETAIL = "/api/v1/deployments/price-direction"
FAST_STAGES = [{"percent": 10}, {"percent": 50}, {"percent": 100}]


def test_analysts_read_deployments_but_only_staff_change_them(
    deployment, champion, challenger, analyst_api, outsider_api, anon_api, staff_api
):
    listing = analyst_api.get(BASE)
    assert listing.status_code == 200
    [entry] = listing.json()
    assert entry["name"] == "price-direction" and entry["rollout"] is None
    assert entry["versions"] == [
        {
            "model_version_id": champion.pk,
            "version": champion.version,
            "framework": "sklearn",
            "model_type": "linear",
            "role": "champion",
            "weight": 100.0,
            "shadow": False,
        }
    ]
    detail = analyst_api.get(DETAIL).json()
    assert detail["signature"]["inputs"][0] == {"name": "f1", "kind": "numeric", "v2_datatype": "FP64"}
    assert detail["events"][0]["kind"] == EventKind.DEPLOYMENT_CREATED
    traffic = {
        "traffic": [{"model_version_id": champion.pk, "weight": 80}, {"model_version_id": challenger.pk, "weight": 20}]
    }
    assert analyst_api.post(f"{DETAIL}/traffic", traffic, format="json").status_code == 403
    assert outsider_api.get(BASE).status_code == 403
    assert anon_api.get(BASE).status_code == 401
    response = staff_api.post(f"{DETAIL}/traffic", traffic, format="json")
    assert response.status_code == 200, response.content
    assert {v["version"]: v["weight"] for v in response.json()["versions"]} == {
        champion.version: 80.0,
        challenger.version: 20.0,
    }


def test_staff_create_deployments_and_bad_requests_name_the_field(champion, challenger, staff_api):
    response = staff_api.post(BASE, {"name": "price-direction", "model_version_id": champion.pk}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["versions"][0]["weight"] == 100.0
    again = staff_api.post(BASE, {"name": "price-direction", "model_version_id": champion.pk}, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["name"][0]
    assert (
        "model_version_id" in staff_api.post(BASE, {"name": "other", "model_version_id": 999999}, format="json").json()
    )
    cases = [
        ({"traffic": [{"model_version_id": champion.pk, "weight": 60}]}, "traffic"),
        (
            {
                "traffic": [
                    {"model_version_id": champion.pk, "weight": 100},
                    {"model_version_id": challenger.pk, "weight": 10, "shadow": True},
                ]
            },
            "traffic[1].weight",
        ),
        (
            {
                "traffic": [
                    {"model_version_id": champion.pk, "weight": 100},
                    {"model_version_id": champion.pk, "weight": 0},
                ]
            },
            "traffic[1].model_version",
        ),
        ({"traffic": [{"model_version_id": champion.pk, "weight": 101}]}, "traffic"),
    ]
    for body, field in cases:
        response = staff_api.post(f"{DETAIL}/traffic", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (field, response.json())
    assert Deployment.objects.get(name="price-direction").versions.filter(weight__gt=0).count() == 1


def test_a_rollout_is_driven_through_the_api_and_a_double_promote_is_a_conflict(
    deployment, challenger, staff_api, analyst_api
):
    created = staff_api.post(
        f"{DETAIL}/rollouts", {"challenger_version": challenger.version, "stages": FAST_STAGES}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == RolloutStatus.RUNNING and created.json()["percent"] == 10.0
    assert analyst_api.post(f"{DETAIL}/rollout/promote", {"stage": 0}, format="json").status_code == 403
    missing_stage = staff_api.post(f"{DETAIL}/rollout/promote", {}, format="json")
    assert missing_stage.status_code == 400 and "stage" in missing_stage.json()
    assert (
        staff_api.post(f"{DETAIL}/rollout/promote", {"stage": 0, "reason": "metrics fine"}, format="json").json()[
            "percent"
        ]
        == 50.0
    )
    stale = staff_api.post(f"{DETAIL}/rollout/promote", {"stage": 0}, format="json")
    assert stale.status_code == 409 and "someone acted first" in stale.json()["detail"]
    manual = staff_api.post(
        f"{DETAIL}/traffic", {"traffic": [{"model_version_id": challenger.pk, "weight": 100}]}, format="json"
    )
    assert manual.status_code == 409 and "controls the weights" in manual.json()["detail"]
    assert staff_api.post(f"{DETAIL}/rollout/pause", {}, format="json").json()["status"] == RolloutStatus.PAUSED
    assert staff_api.post(f"{DETAIL}/rollout/pause", {}, format="json").status_code == 409
    assert staff_api.post(f"{DETAIL}/rollout/resume", {}, format="json").json()["status"] == RolloutStatus.RUNNING
    assert staff_api.post(f"{DETAIL}/rollout/dance", {}, format="json").status_code == 404
    assert (
        staff_api.post(f"{DETAIL}/rollout/abort", {"reason": "changed our minds"}, format="json").json()["status"]
        == RolloutStatus.ABORTED
    )
    assert staff_api.post(f"{DETAIL}/rollout/abort", {}, format="json").status_code == 409
    events = analyst_api.get(f"{DETAIL}/events").json()
    assert [e["kind"] for e in events[:3]] == [
        EventKind.ROLLOUT_ABORTED,
        EventKind.ROLLOUT_RESUMED,
        EventKind.ROLLOUT_PAUSED,
    ]
    assert events[0]["actor"] == "staffer" and events[0]["reason"] == "changed our minds"


def test_one_call_rolls_back_to_an_earlier_version_by_its_number(
    deployment, champion, challenger, staff_api, analyst_api
):
    staff_api.post(f"{DETAIL}/rollouts", {"challenger_version_id": challenger.pk, "stages": FAST_STAGES}, format="json")
    staff_api.post(f"{DETAIL}/rollout/promote", {"stage": 0}, format="json")
    staff_api.post(f"{DETAIL}/rollout/promote", {"stage": 1}, format="json")
    staff_api.post(f"{DETAIL}/rollout/promote", {"stage": 2}, format="json")
    assert Rollout.objects.get().status == RolloutStatus.COMPLETED
    assert analyst_api.post(f"{DETAIL}/rollback", {"version": champion.version}, format="json").status_code == 403
    response = staff_api.post(f"{DETAIL}/rollback", {"version": champion.version, "reason": "drift"}, format="json")
    assert response.status_code == 200, response.content
    assert [(v["version"], v["weight"]) for v in response.json()["versions"]] == [(champion.version, 100.0)]
    assert response.json()["events"][0]["kind"] == EventKind.ROLLED_BACK_TO_VERSION
    assert staff_api.post(f"{DETAIL}/rollback", {"version": 999}, format="json").status_code == 400
    assert staff_api.post(f"{DETAIL}/rollback", {}, format="json").status_code == 400


@pytest.fixture
def running_rollout(deployment, challenger, staff_user):
    from apps.deployments.services.model_deployment_service import rollout_create

    return rollout_create(deployment=deployment, challenger=challenger, stages=FAST_STAGES, user=staff_user, start=True)


def _action(client, rollout, action, **extra):
    return client.post("/admin/deployments/rollout/", {"action": action, "_selected_action": [rollout.pk], **extra})


def test_staff_promote_from_the_admin_after_a_confirmation_page_and_a_stale_page_acts_no_twice(
    running_rollout, staff_user, client
):
    client.force_login(staff_user)
    page = _action(client, running_rollout, "promote_action")
    assert page.status_code == 200
    assert b'name="stage_%d" value="0"' % running_rollout.pk in page.content
    assert Rollout.objects.get().stage_index == 0, "nothing happens before confirming"
    confirm = {"confirm": "yes", f"stage_{running_rollout.pk}": "0", "reason": "from admin"}
    assert _action(client, running_rollout, "promote_action", **confirm).status_code == 302
    assert Rollout.objects.get().stage_index == 1
    _action(client, running_rollout, "promote_action", **confirm)  # the same, stale confirmation page again
    assert Rollout.objects.get().stage_index == 1
    event = DeploymentEvent.objects.filter(kind=EventKind.STAGE_ADVANCED).get()
    assert event.actor == staff_user and event.reason == "from admin"
    page = client.get(f"/admin/deployments/rollout/{running_rollout.pk}/change/")
    assert page.status_code == 200 and b"Gate status" in page.content


def test_analysts_see_the_admin_pages_but_cannot_act(running_rollout, deployment, analyst_user, client):
    client.force_login(analyst_user)
    assert client.get("/admin/deployments/deployment/").status_code == 200
    assert client.get(f"/admin/deployments/deployment/{deployment.pk}/change/").status_code == 200
    response = _action(client, running_rollout, "promote_action", confirm="yes", **{f"stage_{running_rollout.pk}": "0"})
    assert response.status_code == 403
    assert Rollout.objects.get().stage_index == 0
    response = client.post(
        "/admin/deployments/deployment/", {"action": "rollback_action", "_selected_action": [deployment.pk]}
    )
    assert response.status_code == 403


def test_staff_roll_back_a_deployment_from_the_admin(running_rollout, deployment, champion, staff_user, client):
    client.force_login(staff_user)
    page = client.post(
        "/admin/deployments/deployment/", {"action": "rollback_action", "_selected_action": [deployment.pk]}
    )
    assert page.status_code == 200 and b"Roll back to" in page.content
    response = client.post(
        "/admin/deployments/deployment/",
        {
            "action": "rollback_action",
            "_selected_action": [deployment.pk],
            "confirm": "yes",
            "model_version": champion.pk,
            "reason": "admin rollback",
        },
    )
    assert response.status_code == 302
    assert Rollout.objects.get().status == RolloutStatus.ROLLED_BACK
    assert list(deployment.versions.filter(weight__gt=0).values_list("model_version_id", "weight")) == [
        (champion.pk, 100.0)
    ]


def test_the_openapi_schema_documents_the_deployment_and_inference_endpoints(analyst_api):
    schema = analyst_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/deployments/",
        "/api/v1/deployments/{name}",
        "/api/v1/deployments/{name}/predict",
        "/api/v1/deployments/{name}/feedback",
        "/api/v1/deployments/{name}/rollout/{action}",
        "/api/v1/deployments/{name}/rollback",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/api/v1/monitoring/deployments/{name}/series",
    ):
        assert path in paths, path
    predict = paths["/api/v1/deployments/{name}/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"dataframe_split", "dataframe_records", "instances", "inputs"} <= set(
        schema["components"]["schemas"][body]["properties"]
    )
    assert "400" in predict["responses"] and "X-Routing-Key" in {p["name"] for p in predict.get("parameters", [])}
    infer = paths["/v2/models/{name}/infer"]["post"]["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"
    ]
    assert "outputs" in schema["components"]["schemas"][infer.rsplit("/", 1)[-1]]["properties"]
