"""Dashboard fixtures: a deployment in mid-rollout built through the real services, and a running
training run and tuning study, so the summary and the pushes have something true to show."""

import pytest
from django.conf import settings

from tests.training import factories


@pytest.fixture
def built_frontend():
    """The Vite build the page serves (`make test` builds it first)."""
    manifest = settings.FRONTEND_DIST / ".vite" / "manifest.json"
    if not manifest.exists():
        pytest.fail(f"{manifest} is missing: run `make frontend` (cd frontend2 && npm ci && npm run build) first")
    return manifest


def trained_version(experiment):
    """A model version from a real (tiny, in-process) training run."""
    from apps.training.services.experiments import experiment_training_config
    from apps.training.services.training_pipeline import training_run_execute, training_run_start

    config = experiment_training_config(experiment=experiment)
    run = training_run_start(experiment=experiment, dispatch=False, **config)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error_message
    return run.model_versions.get()


@pytest.fixture
def inline_runs(settings):
    # The run's watcher thread has its own connection; inside a test transaction it must not heartbeat.
    settings.TRAINING_HEARTBEAT_SECONDS = 3600


@pytest.fixture
def experiment(db, staff_user, inline_runs):
    dataset, _, spec = factories.price_dataset(user=staff_user)
    return factories.experiment(
        dataset=dataset, spec=spec, name="price-direction", framework="sklearn", model_type="linear", user=staff_user
    )


@pytest.fixture
def rolling_deployment(experiment, staff_user):
    """`price-direction`: v1 champion, v2 challenger at the first stage (10%) of a running rollout."""
    from apps.deployments.services.rollouts import rollout_create
    from apps.deployments.services.traffic import deployment_create

    champion = trained_version(experiment)
    challenger = trained_version(experiment)
    deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    rollout_create(deployment=deployment, challenger=challenger, user=staff_user, start=True, reason="weekly retrain")
    return deployment


@pytest.fixture
def running_run(experiment):
    """A queued run moved to running with two epochs recorded, as a worker would have done."""
    from apps.training.choices import RunStatus
    from apps.training.services.experiments import experiment_training_config
    from apps.training.services.runs import epoch_record, run_log_append, run_records_write, run_status_transition
    from apps.training.services.training_pipeline import training_run_start

    run = training_run_start(experiment=experiment, dispatch=False, **experiment_training_config(experiment=experiment))
    run = run_status_transition(run_id=run.pk, to=RunStatus.RUNNING, reason="test", fields={"attempts": 1})
    run_log_append(
        run_id=run.pk,
        level="INFO",
        message="preparing 240 rows of price-direction (train 168, val 36, test 36)",
        attempt=1,
    )
    for epoch, loss in ((1, 0.9), (2, 0.7)):
        run_records_write(
            run=run, attempt=1, records=[epoch_record(epoch, 5, {"loss": loss, "val_loss": loss + 0.1}, 12.0)]
        )
        run_log_append(
            run_id=run.pk,
            level="INFO",
            message=f"epoch {epoch}/5: loss={loss:.4g}, val_loss={loss + 0.1:.4g}",
            attempt=1,
        )
    run_log_append(
        run_id=run.pk, level="WARNING", message="validation loss above training loss for 2 epochs", attempt=1
    )
    return run


@pytest.fixture
def running_study(experiment):
    """`lr-search` (bayesian, 8 trials planned): two trials done, one pruned, one running — moved
    through tuning's own status services, without dispatching any training."""
    from apps.tuning.services.state import study_status_change, trial_create, trial_status_change
    from apps.tuning.services.studies import study_create

    study = study_create(
        name="lr-search",
        experiment=experiment,
        strategy="bayesian",
        max_trials=8,
        search_space=[{"name": "alpha", "type": "float", "low": 0.001, "high": 100.0, "log": True}],
    )
    study = study_status_change(study=study, to="running", reason="test")
    for number, to, value in (
        (1, "completed", 0.61),
        (2, "completed", 0.64),
        (3, "pruned", None),
        (4, "running", None),
    ):
        trial = trial_create(study=study, number=number, params={"alpha": 0.1 * number}, reason="test")
        trial = trial_status_change(trial=trial, to="running", reason="test")
        if to != "running":
            trial_status_change(trial=trial, to=to, reason="test", fields={"value": value})
    return study
