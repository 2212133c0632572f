import pytest

from tests.training import factories


@pytest.fixture
def inline_runs(settings):
    settings.TRAINING_HEARTBEAT_SECONDS = 3600
    settings.TRAINING_WRITE_BEHIND = False


@pytest.fixture
def trained_run(db, inline_runs, staff_user):
    """A succeeded sklearn run on tiny price data, registered as version 1 of "tiny-direction"."""
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    dataset, _, spec = factories.price_dataset()
    experiment = factories.experiment(dataset=dataset, spec=spec, user=staff_user)
    run = training_run_start(
        experiment=experiment, framework="sklearn", model_type="linear", params={}, user=staff_user, dispatch=False
    )
    return training_run_execute(run_id=run.pk)


@pytest.fixture
def version(trained_run):
    return trained_run.model_versions.get()
