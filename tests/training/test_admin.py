"""Admin: Train now / Cancel / Retry for ML Staff only; the run page is one live component; schedule fire times."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.training.choices import RunStatus
from apps.training.models import TrainingRun
from apps.training.services.training_pipeline import training_run_execute

from .conftest import start_inline

pytestmark = pytest.mark.usefixtures("inline_runs")


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_train_now_asks_for_settings_then_queues_a_run_per_experiment(staff_user, price_experiment):
    url = reverse("admin:training_experiment_changelist")
    client = _client(staff_user)
    page = client.post(url, {"action": "train_now", "_selected_action": [price_experiment.pk]})
    assert page.status_code == 200 and b'name="params"' in page.content
    bad = client.post(
        url,
        {
            "action": "train_now",
            "_selected_action": [price_experiment.pk],
            "apply": "1",
            "framework": "torch",
            "model_type": "mlp",
            "params": '{"epochs": "many"}',
        },
        follow=True,
    )
    assert b"epochs" in bad.content and not TrainingRun.objects.exists()
    client.post(
        url,
        {
            "action": "train_now",
            "_selected_action": [price_experiment.pk],
            "apply": "1",
            "framework": "sklearn",
            "model_type": "gradient_boosting",
            "params": '{"max_iter": 20}',
            "seed": "5",
        },
    )
    run = TrainingRun.objects.get()
    assert (run.framework, run.model_type, run.params["max_iter"], run.seed, run.origin) == (
        "sklearn",
        "gradient_boosting",
        20,
        5,
        "admin",
    )


def test_analysts_see_experiments_and_runs_but_cannot_train_cancel_or_retry(analyst_user, price_experiment):
    client = _client(analyst_user)
    changelist = client.get(reverse("admin:training_experiment_changelist"))
    assert changelist.status_code == 200 and b"train_now" not in changelist.content
    client.post(
        reverse("admin:training_experiment_changelist"),
        {"action": "train_now", "_selected_action": [price_experiment.pk], "apply": "1"},
    )
    assert not TrainingRun.objects.exists()
    run = start_inline(price_experiment)
    client.post(reverse("admin:training_trainingrun_changelist"), {"action": "cancel", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_ml_staff_cancel_and_retry_runs_from_the_list(staff_user, price_experiment):
    run = start_inline(price_experiment)
    client = _client(staff_user)
    url = reverse("admin:training_trainingrun_changelist")
    client.post(url, {"action": "cancel", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    client.post(url, {"action": "retry", "_selected_action": [run.pk]})
    assert TrainingRun.objects.filter(retry_of=run, status=RunStatus.QUEUED).exists()


def test_the_run_page_has_one_live_component_and_no_server_rendered_copy_to_disagree_with_it(
    analyst_user, price_experiment
):
    run = training_run_execute(run_id=start_inline(price_experiment, framework="torch", model_type="mlp").pk)
    page = _client(analyst_user).get(reverse("admin:training_trainingrun_change", args=[run.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('data-widget="training-logs"') == 1 and f'data-run-id="{run.pk}"' in html
    # Status, epoch and curves come from the widget only: no second progress bar, chart or log tail.
    # (The stored ROC/PR charts of the test split are not training curves: they are left out here.)
    evaluation = re.search(r'<div class="portal-evaluation">.*?</div>', html, re.S)
    outside = html.replace(evaluation.group(0), "") if evaluation else html
    assert "epoch 2/2" not in html and "<polyline" not in outside and "data-seq=" not in html
    assert "Registered as" in html and 'name="_save"' not in html
    # Metrics are rounded and shown as formatted JSON, not one long line.
    assert '<details class="portal-json" open><summary>' in html
    assert not re.search(r"\d\.\d{6,}", html[html.index("Validation metrics") : html.index("Test metrics")])


def test_train_now_prefills_an_empty_object_and_keeps_the_input_with_each_error_once(staff_user, price_experiment):
    url = reverse("admin:training_experiment_changelist")
    client = _client(staff_user)
    first = client.post(url, {"action": "train_now", "_selected_action": [price_experiment.pk]}).content.decode()
    assert re.search(r'<textarea name="params"[^>]*>\s*\{\}</textarea>', first) and ">null<" not in first
    bad = client.post(
        url,
        {
            "action": "train_now",
            "_selected_action": [price_experiment.pk],
            "apply": "1",
            "framework": "sklearn",
            "model_type": "no_such_type",
            "params": '{"max_iter": 7}',
            "seed": "11",
        },
    )
    html = bad.content.decode()
    assert bad.status_code == 200 and not TrainingRun.objects.exists()
    assert 'value="no_such_type"' in html and "max_iter&quot;: 7" in html and 'value="11"' in html
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', html, re.S)
    assert len(errors) == 1 and "model_type" not in errors[0] and "no_such_type" in errors[0]


def test_a_schedule_saved_in_admin_creates_its_beat_task_and_bad_cron_is_refused(staff_user, price_experiment):
    from django_celery_beat.models import PeriodicTask

    client = _client(staff_user)
    url = reverse("admin:training_trainingschedule_add")
    base = {"name": "weekday", "experiment": price_experiment.pk, "kind": "cron", "params": "{}", "enabled": "on"}
    bad = client.post(url, base | {"cron": "61 * * * *"})
    assert bad.status_code == 200 and b"minute" in bad.content
    assert not PeriodicTask.objects.filter(task="training.retrain_experiment").exists()
    client.post(url, base | {"cron": "0 6 * * 1-5"})
    task = PeriodicTask.objects.get(task="training.retrain_experiment")
    assert task.crontab.hour == "6" and task.crontab.day_of_week == "1-5" and task.enabled
    assert f'"experiment_id": {price_experiment.pk}' in task.kwargs


def test_the_schedule_list_shows_when_each_schedule_last_fired_and_fires_next(staff_user, price_experiment):
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.admin_display import short_time
    from apps.training.admin import schedule_fire_times
    from apps.training.models import TrainingSchedule

    client = _client(staff_user)
    base = {"experiment": price_experiment.pk, "params": "{}", "enabled": "on"}
    client.post(
        reverse("admin:training_trainingschedule_add"),
        base | {"name": "weekday", "kind": "cron", "cron": "0 6 * * 1-5"},
    )
    client.post(
        reverse("admin:training_trainingschedule_add"),
        base | {"name": "two-hourly", "kind": "interval", "every": "2", "unit": "hours"},
    )
    cron = TrainingSchedule.objects.select_related("periodic_task").get(name="weekday")
    last, upcoming = schedule_fire_times(cron)
    now = timezone.now()
    assert last is None and now < upcoming <= now + timedelta(days=4)
    assert (upcoming.hour, upcoming.minute, upcoming.weekday() < 5) == (6, 0, True)

    interval = TrainingSchedule.objects.select_related("periodic_task").get(name="two-hourly")
    fired = now - timedelta(minutes=30)
    interval.periodic_task.last_run_at = fired
    interval.periodic_task.save(update_fields=["last_run_at"])
    interval.refresh_from_db()
    last, upcoming = schedule_fire_times(interval)
    assert last == fired and abs((upcoming - (fired + timedelta(hours=2))).total_seconds()) < 5

    html = client.get(reverse("admin:training_trainingschedule_changelist")).content.decode()
    assert short_time(schedule_fire_times(cron)[1]) in html and short_time(fired) in html
