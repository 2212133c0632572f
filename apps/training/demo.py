"""Demo training for `manage.py seed_demo`: the "price-direction" experiment trained with each
framework, in this process (workers are not running yet) through the same pipeline function the
Celery task uses, and registered under the model "price-direction". Idempotent: a framework that
already has a demo version is not trained again.

The champion and challenger aliases (and so the demo deployment) go to the best two of the torch,
keras and scikit-learn versions; the XGBoost version waits in the registry as a candidate."""

import time

from django.contrib.auth import get_user_model

from .choices import RunOrigin, RunStatus
from .models import Experiment, TrainingSchedule

EXPERIMENT = "price-direction"
DATASET = "demo-prices"
SPEC = "price-features-v1"
# Few epochs: the whole seed stays well under a minute on a laptop.
DEMO_RUNS = (
    ("sklearn", "gradient_boosting", {"max_iter": 60, "stage_size": 10}),
    ("torch", "mlp", {"epochs": 6, "hidden_size": 32, "patience": 6}),
    ("keras", "mlp", {"epochs": 4, "hidden_size": 32, "patience": 4}),
    (
        "xgboost",
        "gradient_boosting",
        {
            "n_estimators": 150,
            "max_depth": 4,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "patience": 25,
        },
    ),
)
# The experiment's default training config, and the frameworks whose versions may take the traffic.
DEFAULT_RUN = DEMO_RUNS[1]
SERVING_FRAMEWORKS = ("sklearn", "torch", "keras")


def _experiment(user):
    from apps.datasets.models import Dataset
    from apps.datasets.selectors import feature_spec_latest

    from .services.experiments import experiment_create

    existing = Experiment.objects.filter(name=EXPERIMENT).first()
    if existing is not None:
        return existing
    dataset = Dataset.objects.filter(name=DATASET).first()
    if dataset is None:
        return None
    return experiment_create(
        name=EXPERIMENT,
        dataset=dataset,
        feature_spec=feature_spec_latest(dataset=dataset, name=SPEC),
        user=user,
        primary_metric="accuracy",
        default_framework=DEFAULT_RUN[0],
        default_model_type=DEFAULT_RUN[1],
        default_params=dict(DEFAULT_RUN[2]),
        registered_model_name=EXPERIMENT,
        description="Next-day direction (up/down) of five synthetic tickers from price features.",
    )


def _schedule(experiment, user):
    from .services.schedules import training_schedule_save

    if not TrainingSchedule.objects.filter(experiment=experiment).exists():
        training_schedule_save(
            schedule=TrainingSchedule(
                name=f"{EXPERIMENT} weekday retrain", experiment=experiment, kind="cron", cron="0 6 * * 1-5"
            ),
            user=user,
        )


def _aliases(user, stdout):
    from apps.registry.models import RegisteredModel
    from apps.registry.services import model_alias_set

    model = RegisteredModel.objects.filter(name=EXPERIMENT).first()
    if model is None or model.aliases.exists():
        return
    versions = sorted(
        model.versions.filter(tags__demo=True, framework__in=SERVING_FRAMEWORKS),
        key=lambda v: v.metrics.get("val", {}).get("accuracy") or 0.0,
        reverse=True,
    )
    for alias, version in zip(("champion", "challenger"), versions):
        model_alias_set(
            model=model, alias=alias, version=version, user=user, reason="demo seed: best validation accuracy"
        )
        stdout.write(f"{model.name}@{alias} -> version {version.version} ({version.framework})")


def seed(*, stdout) -> None:
    from apps.registry.models import ModelVersion
    from apps.registry.services import model_version_update

    from .services.training_pipeline import training_run_execute, training_run_start

    user = get_user_model().objects.filter(username="staff").first()
    experiment = _experiment(user)
    if experiment is None:
        stdout.write(f"training demo skipped: dataset {DATASET!r} does not exist (seed the datasets first)")
        return
    _schedule(experiment, user)
    for framework, model_type, params in DEMO_RUNS:
        done = ModelVersion.objects.filter(
            registered_model__name=EXPERIMENT, framework=framework, tags__demo=True
        ).first()
        if done is not None:
            stdout.write(f"demo {framework} model: {done} already registered")
            continue
        started = time.monotonic()
        run = training_run_start(
            experiment=experiment,
            framework=framework,
            model_type=model_type,
            params=params,
            user=user,
            origin=RunOrigin.DEMO,
            dispatch=False,
        )
        run = training_run_execute(run_id=run.pk)
        if run is None or run.status != RunStatus.SUCCEEDED:
            stdout.write(
                f"demo {framework} run {run.pk if run else '?'} did not succeed: "
                f"{run.error_message if run else 'not executed'}"
            )
            continue
        version = run.model_versions.get()
        model_version_update(
            version=version,
            tags={**version.tags, "demo": True},
            description=f"Demo {framework} {model_type} ({time.monotonic() - started:.1f}s to train)",
        )
        stdout.write(
            f"demo {framework} model: {version} (val accuracy {run.val_metrics.get('accuracy', float('nan')):.3f}, "
            f"{time.monotonic() - started:.1f}s)"
        )
    _aliases(user, stdout)
