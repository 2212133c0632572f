import pytest

from . import factories


@pytest.fixture
def inline_runs(settings):
    """For runs executed inside a test transaction: the watcher and writer threads have their own
    database connections and cannot see the uncommitted run, so the watcher must not heartbeat and
    log lines are written by the training thread."""
    settings.TRAINING_HEARTBEAT_SECONDS = 3600
    settings.TRAINING_WRITE_BEHIND = False


@pytest.fixture
def price_data(db):
    return factories.price_dataset()


@pytest.fixture
def price_experiment(price_data, staff_user):
    dataset, _, spec = price_data
    return factories.experiment(dataset=dataset, spec=spec, user=staff_user)


def start_inline(experiment, *, framework=None, model_type=None, params=None, device=None, **kwargs):
    """A run created like any other but not queued: the test executes it in-process."""
    from apps.training.services.experiments import experiment_training_config
    from apps.training.services.training_pipeline import training_run_start

    config = experiment_training_config(
        experiment=experiment, framework=framework, model_type=model_type, params=params, device=device
    )
    if params is None and framework is not None:
        config["params"] = factories.fast_params(config["framework"], config["model_type"])
    return training_run_start(experiment=experiment, dispatch=False, **config, **kwargs)
