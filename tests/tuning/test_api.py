"""REST API for studies: staff write, analysts read, everyone else is refused; bad input is a 400."""

import pytest

from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.models import Trial, TuningStudy

from .conftest import ALPHA_SPACE

pytestmark = pytest.mark.usefixtures("parked_runs")


def payload(study_experiment, **overrides):
    return {
        "name": "api-study",
        "experiment": study_experiment.pk,
        "search_space": ALPHA_SPACE,
        "strategy": "random",
        "max_trials": 3,
        **overrides,
    }


@pytest.fixture
def finished_study(regression_experiment):
    """A completed study with four trials (values written directly: this is about reading them)."""
    from apps.tuning.services import study_create

    study = study_create(
        name="done",
        experiment=regression_experiment,
        strategy="random",
        max_trials=4,
        search_space=[*ALPHA_SPACE, {"name": "max_iter", "type": "int", "low": 50, "high": 500}],
    )
    TuningStudy.objects.filter(pk=study.pk).update(status=StudyStatus.COMPLETED)
    rows = [(1, 0.01, 100, 60.0), (2, 1.0, 400, 55.0), (3, 30.0, 200, 70.0)]
    for number, alpha, max_iter, value in rows:
        Trial.objects.create(
            study=study,
            number=number,
            params={"alpha": alpha, "max_iter": max_iter},
            status=TrialStatus.COMPLETED,
            value=value,
            intermediate_values={"1": value},
        )
    Trial.objects.create(
        study=study,
        number=4,
        params={"alpha": 5.0, "max_iter": 60},
        status=TrialStatus.PRUNED,
        intermediate_values={"1": 90.0},
        prune_requested_at_epoch=1,
    )
    return study


def test_staff_create_a_study_and_start_it_in_one_call(staff_api, regression_experiment):
    response = staff_api.post(
        "/api/v1/studies/", payload(regression_experiment, start=True, parallelism=2), format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "running" and body["framework"] == "sklearn" and body["model_type"] == "linear"
    assert body["objective_metric"] == "rmse" and body["direction"] == "minimize" and body["n_trials"] == 2
    assert body["events"][0]["to_status"] == "draft" and body["events"][0]["actor"] == "staffer"


def test_an_invalid_space_is_a_400_naming_the_parameter(staff_api, regression_experiment):
    space = [{"name": "alpha", "type": "float", "low": 5.0, "high": 1.0}]
    response = staff_api.post("/api/v1/studies/", payload(regression_experiment, search_space=space), format="json")
    assert response.status_code == 400
    assert "parameter 'alpha': low (5.0) is greater than high (1.0)" in response.json()["search_space"][0]
    assert not TuningStudy.objects.exists()


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"search_space": [{"name": "depth", "type": "int", "low": 1, "high": 9}]}, "search_space"),
        ({"experiment": 999999}, "experiment"),
        ({"strategy": "annealing"}, "strategy"),
        ({"max_trials": "many"}, "max_trials"),
        ({"pruner_options": {"n_startup_trials": -1}, "pruner": "median"}, "pruner_options"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(staff_api, regression_experiment, overrides, field):
    response = staff_api.post("/api/v1/studies/", payload(regression_experiment, **overrides), format="json")
    assert response.status_code == 400 and field in response.json()


def test_start_pause_resume_and_stop_are_posts(staff_api, regression_experiment):
    study_id = staff_api.post("/api/v1/studies/", payload(regression_experiment), format="json").json()["id"]
    for verb, status in (("start", "running"), ("pause", "paused"), ("resume", "running"), ("stop", "stopped")):
        response = staff_api.post(f"/api/v1/studies/{study_id}/{verb}")
        assert response.status_code == 200, response.json()
        assert response.json()["status"] == status
    response = staff_api.post(f"/api/v1/studies/{study_id}/resume")
    assert response.status_code == 409 and "cannot become running" in response.json()["detail"], response.json()
    assert response.json()["field"] == "status"


def test_analysts_read_studies_but_cannot_create_or_start_them(analyst_api, finished_study):
    assert analyst_api.get("/api/v1/studies/").json()[0]["name"] == "done"
    assert analyst_api.get(f"/api/v1/studies/{finished_study.pk}/").status_code == 200
    assert analyst_api.post("/api/v1/studies/", {}, format="json").status_code == 403
    assert analyst_api.post(f"/api/v1/studies/{finished_study.pk}/stop").status_code == 403


@pytest.mark.parametrize("client", ["outsider_api", "anon_api"])
def test_users_without_a_role_and_anonymous_clients_get_nothing(request, client, finished_study):
    api = request.getfixturevalue(client)
    for url in ("/api/v1/studies/", f"/api/v1/studies/{finished_study.pk}/history"):
        assert api.get(url).status_code in (401, 403)


def test_the_detail_names_the_best_trial(analyst_api, finished_study):
    body = analyst_api.get(f"/api/v1/studies/{finished_study.pk}/").json()
    assert body["best_trial"]["number"] == 2 and body["best_trial"]["value"] == 55.0
    assert body["n_trials"] == 4 and body["n_finished"] == 4


def test_history_lists_every_trial_with_the_best_value_so_far(analyst_api, finished_study):
    history = analyst_api.get(f"/api/v1/studies/{finished_study.pk}/history").json()
    assert [(h["number"], h["value"], h["best_value"]) for h in history] == [
        (1, 60.0, 60.0),
        (2, 55.0, 55.0),
        (3, 70.0, 55.0),
        (4, None, 55.0),
    ]
    assert history[3]["status"] == "pruned" and history[3]["last_intermediate"] == 90.0


def test_importances_rank_the_parameters(analyst_api, finished_study):
    body = analyst_api.get(f"/api/v1/studies/{finished_study.pk}/importances").json()
    assert body["method"] == "random_forest" and body["n_trials"] == 3
    assert {i["param"] for i in body["importances"]} == {"alpha", "max_iter"}
    assert sum(i["importance"] for i in body["importances"]) == pytest.approx(1.0)


def test_parallel_coordinates_give_axes_and_one_line_per_completed_trial(analyst_api, finished_study):
    body = analyst_api.get(f"/api/v1/studies/{finished_study.pk}/parallel-coordinates").json()
    assert [d["name"] for d in body["dimensions"]] == ["alpha", "max_iter", "rmse"]
    assert body["dimensions"][0]["log"] is True and body["dimensions"][2]["low"] == 55.0
    assert [t["number"] for t in body["trials"]] == [1, 2, 3]


def test_trials_carry_their_intermediate_values(analyst_api, finished_study):
    trials = analyst_api.get(f"/api/v1/studies/{finished_study.pk}/trials").json()
    assert trials[3]["status"] == "pruned" and trials[3]["intermediate_values"] == {"1": 90.0}


def test_an_unknown_study_is_a_404(analyst_api):
    assert analyst_api.get("/api/v1/studies/424242/history").status_code == 404
