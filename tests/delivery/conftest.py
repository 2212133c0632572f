"""Delivery tests reuse the training fixtures (tiny price data trained in-process) and the
deployments' ones (real registered versions of "price-direction")."""

import pytest

from tests.deployments.conftest import challenger, champion, deployment, make_version  # noqa: F401
from tests.training.conftest import inline_runs, price_data, price_experiment  # noqa: F401


def next_days(*, dataset, days: int, user=None):
    """The next `days` business days of `dataset`'s series as a new version (demo_new_data's code)."""
    from apps.delivery.demo import demo_new_data

    version, created = demo_new_data(dataset_name=dataset.name, days=days, user=user)
    assert created
    return version


def train(experiment, dataset_version, **params):
    """A registered version of `experiment` trained in-process on `dataset_version`."""
    from apps.registry.models import ModelVersion
    from apps.training.choices import RunStatus
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    run = training_run_start(
        experiment=experiment,
        framework="sklearn",
        model_type="linear",
        params=params,
        dataset_version=dataset_version,
        dispatch=False,
    )
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    return ModelVersion.objects.select_related("registered_model", "dataset_version").get(training_run=run)


@pytest.fixture
def series(price_data, staff_user, inline_runs, django_capture_on_commit_callbacks):  # noqa: F811
    """ "prices" served by a champion trained on the first version of a daily price series, and a
    second version with 40 more business days for candidates to train on."""
    from apps.deployments.services.model_deployment_service import deployment_create
    from tests.training import factories

    dataset, first, spec = price_data
    experiment = factories.experiment(dataset=dataset, spec=spec, name="direction", registered_model_name="prices")
    champion_version = train(experiment, first)
    with django_capture_on_commit_callbacks(execute=True):
        served = deployment_create(name="prices", model_version=champion_version, user=staff_user)
    second = next_days(dataset=dataset, days=40)
    return {
        "experiment": experiment,
        "first": first,
        "second": second,
        "champion": champion_version,
        "deployment": served,
    }
