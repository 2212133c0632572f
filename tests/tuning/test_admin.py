"""The study pages in Django admin: create, act (ML Staff only), and the one live component."""

import json

import pytest
from django.test import Client

from apps.tuning.choices import StudyStatus
from apps.tuning.models import TuningStudy
from apps.tuning.services import study_create

from .conftest import ALPHA_SPACE

pytestmark = pytest.mark.usefixtures("parked_runs")

CHANGELIST = "/admin/tuning/tuningstudy/"


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def form(experiment, **overrides):
    data = {
        "name": "from-admin",
        "experiment": experiment.pk,
        "framework": "",
        "model_type": "",
        "search_space": json.dumps(ALPHA_SPACE),
        "fixed_params": "{}",
        "strategy": "random",
        "strategy_options": "{}",
        "objective_metric": "",
        "direction": "",
        "max_trials": "3",
        "max_wall_seconds": "",
        "parallelism": "1",
        "pruner": "none",
        "pruner_options": "{}",
        "device": "cpu",
        "seed": "",
    }
    return {**data, **overrides}


def act(client, action, study):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [study.pk]}, follow=True)


def test_staff_create_a_study_in_admin_with_the_experiments_defaults(staff_user, regression_experiment):
    response = logged_in(staff_user).post(f"{CHANGELIST}add/", form(regression_experiment))
    assert response.status_code == 302, response.context["adminform"].form.errors
    study = TuningStudy.objects.get(name="from-admin")
    assert (study.status, study.framework, study.model_type, study.objective_metric) == (
        StudyStatus.DRAFT,
        "sklearn",
        "linear",
        "rmse",
    )
    assert study.created_by == staff_user and study.seed == regression_experiment.seed


def test_the_admin_form_shows_which_parameter_is_wrong(staff_user, regression_experiment):
    space = json.dumps([{"name": "alpha", "type": "float", "low": -1, "high": 1, "log": True}])
    response = logged_in(staff_user).post(f"{CHANGELIST}add/", form(regression_experiment, search_space=space))
    assert response.status_code == 200
    assert "parameter &#x27;alpha&#x27;: a log-scale range needs positive bounds" in response.content.decode()
    assert not TuningStudy.objects.exists()


def test_staff_start_pause_resume_and_stop_a_study_with_admin_actions(staff_user, regression_experiment):
    study = study_create(name="acted", experiment=regression_experiment, search_space=ALPHA_SPACE, max_trials=2)
    client = logged_in(staff_user)
    for action, status in (
        ("start_studies", "running"),
        ("pause_studies", "paused"),
        ("resume_studies", "running"),
        ("stop_studies", "stopped"),
    ):
        act(client, action, study)
        study.refresh_from_db()
        assert study.status == status
    page = act(client, "resume_studies", study).content.decode()
    assert "not resumed" in page and "cannot become running" in page


def test_analysts_see_studies_but_cannot_act_on_them(analyst_user, regression_experiment):
    study = study_create(name="watched", experiment=regression_experiment, search_space=ALPHA_SPACE)
    client = logged_in(analyst_user)
    assert client.get(f"{CHANGELIST}{study.pk}/change/").status_code == 200
    act(client, "start_studies", study)
    study.refresh_from_db()
    assert study.status == StudyStatus.DRAFT
    assert client.get(f"{CHANGELIST}add/").status_code == 403


def test_the_study_page_has_one_live_component_and_the_staff_buttons(staff_user, analyst_user, regression_experiment):
    study = study_create(name="charted", experiment=regression_experiment, search_space=ALPHA_SPACE)
    page = logged_in(staff_user).get(f"{CHANGELIST}{study.pk}/change/").content.decode()
    assert page.count('data-widget="tuning-study"') == 1 and f'data-study-id="{study.pk}"' in page
    # No server-rendered charts or counts that would go stale beside the live widget.
    assert "<polyline" not in page and "trials finished" not in page
    assert 'value="start_studies"' in page  # the draft can be started from its own page
    analyst_page = logged_in(analyst_user).get(f"{CHANGELIST}{study.pk}/change/").content.decode()
    assert 'data-widget="tuning-study"' in analyst_page and 'value="start_studies"' not in analyst_page
