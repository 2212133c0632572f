"""Admin runs list: search by metric and parameter, filter by model type and trigger, compare runs
side by side; schedules show what their last tick did and take force_next."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.training.models import TrainingRun, TrainingSchedule
from apps.training.services.training_pipeline import training_run_execute

from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def two_trained_runs(price_experiment):
    """Two real torch runs that differ in one parameter (and so in their results)."""
    first = training_run_execute(run_id=start_inline(price_experiment, framework="torch", model_type="mlp").pk)
    params = first.params | {"epochs": first.params["epochs"] + 1}
    second = training_run_execute(
        run_id=start_inline(price_experiment, framework="torch", model_type="mlp", params=params).pk
    )
    return first, second


def _listed_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)}


def test_runs_are_found_by_a_metric_threshold_a_parameter_value_and_filtered_by_model_type(
    analyst_user, two_trained_runs
):
    first, second = two_trained_runs
    client = _client(analyst_user)
    url = reverse("admin:training_trainingrun_changelist")
    accuracy = first.val_metrics["accuracy"]
    above = {r.pk for r in two_trained_runs if r.val_metrics["accuracy"] >= accuracy}
    assert _listed_ids(client.get(url, {"q": f"accuracy>={accuracy}"}).content.decode()) == above
    assert (
        _listed_ids(
            client.get(
                url, {"q": f"accuracy>{max(r.val_metrics['accuracy'] for r in two_trained_runs)}"}
            ).content.decode()
        )
        == set()
    )
    assert _listed_ids(client.get(url, {"q": f"epochs={second.params['epochs']}"}).content.decode()) == {second.pk}
    assert _listed_ids(
        client.get(url, {"q": f"test.accuracy>=0 epochs={first.params['epochs']}"}).content.decode()
    ) == {first.pk}
    assert _listed_ids(client.get(url, {"model_type": "lstm"}).content.decode()) == set()
    assert _listed_ids(client.get(url, {"model_type": "mlp", "origin": "code"}).content.decode()) == {
        first.pk,
        second.pk,
    }
    # A threshold that is not a number is said so, never a 500 and never "everything matches".
    bad = client.get(url, {"q": "accuracy>high"}, follow=True)
    assert bad.status_code == 200 and _listed_ids(bad.content.decode()) == set()
    assert "needs a number" in bad.content.decode()


def test_compare_selected_runs_shows_params_and_metrics_side_by_side_with_differences_and_curves(
    analyst_user, two_trained_runs
):
    first, second = two_trained_runs
    page = _client(analyst_user).post(
        reverse("admin:training_trainingrun_changelist"),
        {"action": "compare_runs", "_selected_action": [first.pk, second.pk]},
    )
    html = page.content.decode()
    assert page.status_code == 200 and 'id="run-compare"' in html
    epochs = re.search(r'<tr data-row="epochs"( class="portal-differs")?>(.*?)</tr>', html, re.S)
    assert (
        epochs.group(1)
        and f">{first.params['epochs']}<" in epochs.group(2)
        and f">{second.params['epochs']}<" in epochs.group(2)
    )
    framework_row = re.search(r'<tr data-row="model"( class="portal-differs")?>', html)
    assert framework_row.group(1) is None, "equal values are not highlighted"
    # One chart per curve with one line per run, their epochs on a shared axis.
    chart = html[html.index('id="compare-val_loss"') :]
    chart = chart[: chart.index("</figure>")]
    assert chart.count("<polyline") == 2 and f"run {first.pk}" in chart and f"run {second.pk}" in chart
    one = _client(analyst_user).post(
        reverse("admin:training_trainingrun_changelist"),
        {"action": "compare_runs", "_selected_action": [first.pk]},
        follow=True,
    )
    assert "at least two runs" in one.content.decode()


def test_a_schedule_shows_its_last_tick_and_force_next_is_set_in_admin(staff_user, price_experiment):
    from apps.training.services.schedules import experiment_retrain_scheduled

    client = _client(staff_user)
    client.post(
        reverse("admin:training_trainingschedule_add"),
        {
            "name": "nightly",
            "experiment": price_experiment.pk,
            "kind": "interval",
            "every": "1",
            "unit": "days",
            "params": "{}",
            "enabled": "on",
            "framework": "sklearn",
            "model_type": "linear",
            # Read-only fields are not taken from a form, whatever is posted.
            "last_tick_outcome": "started",
            "last_tick_reason": "typed by hand",
        },
    )
    schedule = TrainingSchedule.objects.get(name="nightly")
    assert schedule.last_tick_outcome == "" and not schedule.force_next
    experiment_retrain_scheduled(experiment_id=price_experiment.pk, schedule_id=schedule.pk)
    schedule.refresh_from_db()
    assert schedule.last_tick_outcome == "started" and schedule.last_tick_run_id
    run = TrainingRun.objects.get()
    html = client.get(reverse("admin:training_trainingschedule_changelist")).content.decode()
    assert 'data-status="started"' in html and schedule.last_tick_reason[:40] in html

    change_url = reverse("admin:training_trainingschedule_change", args=[schedule.pk])
    change = client.get(change_url).content.decode()
    assert 'name="force_next"' in change and 'name="last_tick_reason"' not in change
    assert f'href="{reverse("admin:training_trainingrun_change", args=[run.pk])}"' in change
    client.post(
        change_url,
        {
            "name": "nightly",
            "experiment": price_experiment.pk,
            "kind": "interval",
            "every": "1",
            "unit": "days",
            "params": "{}",
            "enabled": "on",
            "framework": "sklearn",
            "model_type": "linear",
            "force_next": "on",
        },
    )
    schedule.refresh_from_db()
    assert schedule.force_next and schedule.last_tick_outcome == "started"
