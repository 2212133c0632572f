"""Alert services on real rollups: what each kind measures, a receiver that stays down, and issue 13's
trigger: a firing accuracy-drop alert on a deployment whose delivery policy challenges new versions
retrains the champion's experiment through the schedule service, and the delivery timeline names the
alert as the reason."""

import time

import pytest

from apps.alerts.choices import AlertEventKind, AlertKind
from apps.alerts.models import AlertRule
from apps.alerts.services import alert_rule_evaluate, alert_rule_save
from apps.delivery.models import DeliveryPolicy
from apps.delivery.selectors import delivery_timeline
from apps.delivery.services import candidate_evaluations_request
from apps.registry.models import ModelVersion
from apps.training.choices import RunStatus
from apps.training.services.training_pipeline import training_run_execute
from tests.deployments.conftest import _csv, classification_frame
from tests.monitoring.traffic import label, store_traffic

pytestmark = pytest.mark.usefixtures("inline_runs")  # versions train in-process


def accuracy_rule(deployment):
    return alert_rule_save(
        rule=AlertRule(
            deployment=deployment,
            name="accuracy",
            kind=AlertKind.ACCURACY_DROP,
            threshold=0.2,
            duration_minutes=0,
            window_minutes=10,
        )
    )


def bad_answers(deployment, champion):
    """Labelled answers of which only about 30% were right, well below the validation score."""
    label(
        deployment,
        store_traffic(deployment, champion, start=time.time() - 300, seconds=120, requests=200, seed=4, accuracy=0.3),
    )


def test_an_accuracy_alert_retrains_the_champions_experiment_and_the_timeline_says_why(deployment, champion):
    from apps.datasets.services import dataset_version_create

    DeliveryPolicy.objects.create(
        deployment=deployment, registered_model=deployment.registered_model, auto_challenge=True
    )
    # New labelled data since the champion trained: the retrain is not skipped as a repeat.
    dataset_version_create(
        dataset=champion.dataset_version.dataset, file=_csv(classification_frame(n=300, seed=7)), filename="more.csv"
    )
    bad_answers(deployment, champion)

    fired = alert_rule_evaluate(rule_id=accuracy_rule(deployment).pk)
    validation = champion.metrics["val"]["accuracy"]
    assert fired.kind == AlertEventKind.FIRING and fired.value > 0.2 and fired.value < validation
    run = fired.retrain_run
    assert run is not None and run.experiment_id == champion.training_run.experiment_id, fired.retrain_note
    assert run.status == RunStatus.QUEUED and run.dataset_version_id != champion.dataset_version_id
    assert fired.retrain_note.startswith("alert accuracy: retrain run")

    # The retrain registers a version; the policy evaluates it; its chain starts with the alert.
    assert training_run_execute(run_id=run.pk).status == RunStatus.SUCCEEDED
    candidate_evaluations_request(version=ModelVersion.objects.get(training_run=run))
    chain = delivery_timeline(deployment=deployment)[0]
    alert_steps = [step for step in chain["steps"] if step["step"] == "alert"]
    assert len(alert_steps) == 1 and alert_steps[0]["reason"].startswith("alert accuracy:")


def test_without_an_auto_challenge_policy_an_accuracy_alert_starts_nothing(deployment, champion):
    bad_answers(deployment, champion)
    fired = alert_rule_evaluate(rule_id=accuracy_rule(deployment).pk)
    assert fired.kind == AlertEventKind.FIRING and fired.retrain_run is None and fired.retrain_note == ""


def test_a_receiver_that_stays_down_uses_up_the_attempts_and_each_failure_stays_on_the_delivery(deployment):
    from apps.alerts.choices import DeliveryStatus
    from apps.alerts.models import AlertDelivery, Webhook
    from apps.alerts.services import alert_delivery_attempt, webhook_save
    from tests.alerts.conftest import free_port_closed

    webhook_save(webhook=Webhook(name="down", url=free_port_closed(), max_attempts=2, retry_backoff_seconds=4))
    rule = alert_rule_save(
        rule=AlertRule(
            deployment=deployment,
            name="silence",
            kind=AlertKind.NO_TRAFFIC,
            threshold=0,
            duration_minutes=0,
            window_minutes=5,
        )
    )
    fired = alert_rule_evaluate(rule_id=rule.pk)
    assert fired.kind == AlertEventKind.FIRING and fired.value == 0
    delivery = AlertDelivery.objects.get(event=fired)

    first, wait = alert_delivery_attempt(delivery_id=delivery.pk)
    assert wait == 4 and first.status == DeliveryStatus.PENDING and "Connection refused" in first.last_error
    last, wait = alert_delivery_attempt(delivery_id=delivery.pk)
    assert wait is None and last.status == DeliveryStatus.FAILED and last.attempts == 2
    assert [e["attempt"] for e in last.errors] == [1, 2]
    again, wait = alert_delivery_attempt(delivery_id=delivery.pk)  # a late retry message tries nothing more
    assert wait is None and again.attempts == 2 and again.status == DeliveryStatus.FAILED


def test_each_kind_reads_its_value_from_the_rollups_in_base_units(deployment, champion):
    from django.utils import timezone

    from apps.alerts.measures import measure
    from apps.monitoring.choices import PredictionStatus
    from apps.monitoring.models import PredictionLog

    now = timezone.now()
    lines = store_traffic(
        deployment,
        champion,
        start=now.timestamp() - 300,
        seconds=120,
        requests=400,
        seed=5,
        latency_ms=20,
        accuracy=0.3,
        f3_shift=4.0,
    )
    label(deployment, lines)
    logs = PredictionLog.objects.filter(deployment=deployment)

    def value(kind, minutes=10):
        return measure(kind=kind, deployment=deployment, window_minutes=minutes, now=now)

    assert value(AlertKind.NO_TRAFFIC) == 400 and value(AlertKind.NO_TRAFFIC, minutes=1) == 0
    assert value(AlertKind.ERROR_RATE) == logs.filter(status=PredictionStatus.SERVER_ERROR).count() / 400
    assert value(AlertKind.ERROR_RATE, minutes=1) is None  # no requests: nothing to judge
    assert 0.02 < value(AlertKind.P99_LATENCY) < 1.0  # seconds, lognormal around 20 ms
    assert value(AlertKind.ACCURACY_DROP) > 0.3
    assert value(AlertKind.DRIFT) > 0.25  # f3 served four standard deviations off its training range
