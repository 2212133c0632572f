"""seed_demo turns delivery on for the demo deployment; demo_new_data extends the demo prices."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.datasets.selectors import dataset_version_dataframe, dataset_version_latest
from apps.delivery import demo
from apps.delivery.models import DeliveryPolicy
from tests.training import factories

pytestmark = pytest.mark.usefixtures("inline_runs")


def test_the_demo_policy_is_created_once_and_retraining_on_new_data_is_on(deployment, staff_user):
    from apps.training.models import Experiment

    Experiment.objects.filter(pk=deployment.versions.get().model_version.training_run.experiment_id).update(
        name=demo.EXPERIMENT
    )
    for _ in range(2):
        demo.seed(stdout=io.StringIO())
    policy = DeliveryPolicy.objects.get()
    assert policy.auto_challenge and policy.deployment == deployment and policy.stages[-1]["percent"] == 100
    assert Experiment.objects.get(name=demo.EXPERIMENT).retrain_on_new_data


def test_demo_new_data_adds_the_next_business_days_as_a_new_version(db, staff_user):
    dataset, first, _ = factories.price_dataset(name=demo.DATASET, user=staff_user)
    out = io.StringIO()
    call_command("demo_new_data", "--days", "5", stdout=out)
    latest = dataset_version_latest(dataset=dataset)
    assert latest.version == 2 and latest.rows == first.rows + 10 and "(new)" in out.getvalue()
    before, after = dataset_version_dataframe(version=first), dataset_version_dataframe(version=latest)
    assert after["date"].astype(str).max() > before["date"].astype(str).max()
    with pytest.raises(CommandError, match="at least 1"):
        call_command("demo_new_data", "--days", "0")
    with pytest.raises(CommandError, match="no version to extend"):
        call_command("demo_new_data", "--dataset", "nope")
