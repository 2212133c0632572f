"""GET /api/v1/dashboard/summary: what the dashboard shows on load, composed from the other apps."""

import pytest

URL = "/api/v1/dashboard/summary"


def test_it_needs_a_login(anon_api, db):
    assert anon_api.get(URL).status_code in (401, 403)


def test_a_user_without_a_role_is_refused(outsider_api):
    response = outsider_api.get(URL)
    assert response.status_code == 403
    assert "no portal role" in response.json()["detail"]


def test_an_empty_portal_gives_empty_lists(analyst_api):
    data = analyst_api.get(URL).json()
    assert (data["deployments"], data["runs"], data["recent_runs"], data["studies"]) == ([], [], [], [])
    assert data["generated_at"]


def test_a_deployment_in_rollout_shows_versions_weights_stage_events_and_allowed_actions(
    rolling_deployment, analyst_api
):
    data = analyst_api.get(URL).json()
    [deployment] = data["deployments"]
    assert deployment["name"] == "price-direction" and deployment["status"] == "rolling_out"
    assert [(v["label"], v["role"], v["weight"]) for v in deployment["versions"]] == [
        ("price-direction v1", "champion", 90.0),
        ("price-direction v2", "challenger", 10.0),
    ]
    rollout = deployment["rollout"]
    assert (rollout["status"], rollout["stage_index"], rollout["stage"], rollout["stages"]) == (
        "running",
        0,
        10,
        [10, 50, 100],
    )
    assert (rollout["champion"], rollout["challenger"]) == ("price-direction v1", "price-direction v2")
    assert rollout["gates"] == []  # not evaluated yet in this stage
    assert [e["kind"] for e in deployment["events"]] == ["rollout_started", "rollout_created", "deployment_created"]
    assert deployment["events"][1]["reason"] == "weekly retrain" and deployment["events"][0]["actor"] == "staffer"
    assert deployment["actions"] == {"promote": True, "pause": True, "resume": False, "rollback": True}


def test_evaluated_gates_of_the_current_stage_are_shown_and_stale_ones_are_not(rolling_deployment, analyst_api):
    from apps.deployments.choices import RolloutAction
    from apps.deployments.models import Rollout
    from apps.deployments.services.gates import rollout_evaluate
    from apps.deployments.services.rollouts import rollout_transition

    rollout = Rollout.objects.get(deployment=rolling_deployment)
    rollout_evaluate(rollout_id=rollout.pk)
    gates = analyst_api.get(URL).json()["deployments"][0]["rollout"]["gates"]
    by_name = {g["name"]: g for g in gates}
    assert by_name["min_predictions"] == {
        "name": "min_predictions",
        "label": "Challenger predictions in this stage",
        "state": "pending",
        "value": 0,
        "threshold": 200,
        "detail": "0 of 200",
    }
    assert by_name["accuracy_vs_champion"]["value"] is None  # the test statistics are a dict: detail says it

    rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, actor_label="tests", expected_stage=0)
    rollout_view = analyst_api.get(URL).json()["deployments"][0]["rollout"]
    assert (rollout_view["stage_index"], rollout_view["stage"], rollout_view["gates"]) == (1, 50, [])


def test_a_paused_rollout_can_be_resumed_but_not_paused(rolling_deployment, analyst_api):
    from apps.deployments.models import Rollout
    from apps.deployments.services.rollouts import rollout_transition

    rollout_transition(rollout=Rollout.objects.get(deployment=rolling_deployment), action="pause", actor_label="tests")
    deployment = analyst_api.get(URL).json()["deployments"][0]
    assert deployment["status"] == "paused"
    assert deployment["actions"] == {"promote": True, "pause": False, "resume": True, "rollback": True}


def test_after_a_rollback_the_champion_serves_alone_and_no_action_is_offered(rolling_deployment, analyst_api):
    from apps.deployments.models import Rollout
    from apps.deployments.services.rollouts import rollout_transition

    rollout_transition(
        rollout=Rollout.objects.get(deployment=rolling_deployment),
        action="rollback",
        actor_label="tests",
        expected_stage=0,
        reason="worse",
    )
    deployment = analyst_api.get(URL).json()["deployments"][0]
    assert deployment["status"] == "serving"
    assert [(v["label"], v["weight"]) for v in deployment["versions"]] == [("price-direction v1", 100.0)]
    assert deployment["rollout"]["status"] == "rolled_back"
    assert not any(deployment["actions"].values())


def test_running_runs_show_progress_and_the_latest_epoch_metrics(running_run, analyst_api):
    data = analyst_api.get(URL).json()
    [run] = data["runs"]
    assert run["id"] == running_run.pk and run["experiment"] == "price-direction"
    assert (run["status"], run["epoch"], run["total_epochs"], run["percent"], run["eta_seconds"]) == (
        "running",
        2,
        5,
        40.0,
        12.0,
    )
    assert run["metrics"] == {"loss": 0.7, "val_loss": pytest.approx(0.8)}
    assert [r["id"] for r in data["recent_runs"]] == [running_run.pk]


def test_finished_runs_leave_the_active_list_but_stay_among_the_recent(experiment, analyst_api):
    from tests.dashboard.conftest import trained_version

    version = trained_version(experiment)
    data = analyst_api.get(URL).json()
    assert data["runs"] == []
    assert [(r["id"], r["status"], r["percent"]) for r in data["recent_runs"]] == [
        (version.training_run_id, "succeeded", 100.0)
    ]


def test_running_studies_show_trials_done_and_the_best_value(running_study, analyst_api):
    from apps.tuning.services.studies import study_create

    study_create(
        name="draft-one",
        experiment=running_study.experiment,
        search_space=[{"name": "alpha", "type": "float", "low": 0.01, "high": 1.0}],
    )
    [shown] = analyst_api.get(URL).json()["studies"]  # the draft is not running: not shown
    assert shown["name"] == "lr-search" and shown["strategy"] == "bayesian" and shown["status"] == "running"
    assert (shown["n_trials"], shown["completed_trials"], shown["running_trials"]) == (8, 3, 1)
    assert (shown["best_value"], shown["best_trial"], shown["metric"]) == (0.64, 2, "accuracy")
