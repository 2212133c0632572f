"""Admin: Train now / Cancel / Retry for ML Staff only; the run page shows progress, curves and log."""
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
    bad = client.post(url, {"action": "train_now", "_selected_action": [price_experiment.pk], "apply": "1",
                            "framework": "torch", "model_type": "mlp", "params": '{"epochs": "many"}'}, follow=True)
    assert b"epochs" in bad.content and not TrainingRun.objects.exists()
    client.post(url, {"action": "train_now", "_selected_action": [price_experiment.pk], "apply": "1",
                      "framework": "sklearn", "model_type": "gradient_boosting", "params": '{"max_iter": 20}',
                      "seed": "5"})
    run = TrainingRun.objects.get()
    assert (run.framework, run.model_type, run.params["max_iter"], run.seed, run.origin) == (
        "sklearn", "gradient_boosting", 20, 5, "admin")


def test_analysts_see_experiments_and_runs_but_cannot_train_cancel_or_retry(analyst_user, price_experiment):
    client = _client(analyst_user)
    changelist = client.get(reverse("admin:training_experiment_changelist"))
    assert changelist.status_code == 200 and b"train_now" not in changelist.content
    client.post(reverse("admin:training_experiment_changelist"),
                {"action": "train_now", "_selected_action": [price_experiment.pk], "apply": "1"})
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


def test_the_run_page_shows_status_progress_metric_curves_and_the_log_tail(analyst_user, price_experiment):
    run = training_run_execute(run_id=start_inline(price_experiment, framework="torch", model_type="mlp").pk)
    page = _client(analyst_user).get(reverse("admin:training_trainingrun_change", args=[run.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Succeeded" in html and "epoch 2/2" in html
    assert html.count("<svg") >= 2 and "val_accuracy" in html and "<polyline" in html
    last = run.log_lines.order_by("-seq").first()
    assert f'data-seq="{last.seq}"' in html and "registered as" in html
    assert f'data-run-id="{run.pk}"' in html


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
