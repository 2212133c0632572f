"""Demo tuning for `manage.py seed_demo`: a ready-to-start Bayesian study on the demo experiment.

It is left as a draft (seed_demo runs before the workers start): press Start on its admin page, or
POST /api/v1/studies/<id>/start. The beat keeper task itself comes from migration 0002. Idempotent.
"""

from django.contrib.auth import get_user_model

EXPERIMENT = "price-direction"
STUDY = "price-direction: tune gradient boosting"
SEARCH_SPACE = [
    {"name": "learning_rate", "type": "float", "low": 0.01, "high": 0.5, "log": True},
    {"name": "max_leaf_nodes", "type": "int", "low": 4, "high": 32},
    {"name": "min_samples_leaf", "type": "int", "low": 5, "high": 60, "log": True},
]


def seed(*, stdout) -> None:
    from apps.training.models import Experiment

    from .models import TuningStudy
    from .services import study_create

    existing = TuningStudy.objects.filter(name=STUDY).first()
    if existing is not None:
        stdout.write(f"demo study {STUDY!r} already exists ({existing.status})")
        return
    experiment = Experiment.objects.filter(name=EXPERIMENT).first()
    if experiment is None:
        stdout.write(f"tuning demo skipped: experiment {EXPERIMENT!r} does not exist (seed training first)")
        return
    study = study_create(
        name=STUDY,
        experiment=experiment,
        framework="sklearn",
        model_type="gradient_boosting",
        search_space=SEARCH_SPACE,
        fixed_params={"max_iter": 60, "stage_size": 10},
        strategy="bayesian",
        strategy_options={"n_initial_points": 4},
        max_trials=12,
        parallelism=2,
        pruner="median",
        user=get_user_model().objects.filter(username="staff").first(),
    )
    stdout.write(
        f"demo study {study.name!r} created as a draft (start it in admin: /admin/tuning/tuningstudy/{study.pk}/)"
    )
