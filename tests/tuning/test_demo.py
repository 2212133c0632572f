import io

import pytest

from apps.tuning import demo
from apps.tuning.choices import StudyStatus
from apps.tuning.models import TuningStudy


@pytest.fixture
def demo_experiment(staff_user):
    from tests.training import factories

    dataset, _, spec = factories.price_dataset()
    return factories.experiment(dataset=dataset, spec=spec, name=demo.EXPERIMENT, user=staff_user)


def test_the_demo_seed_creates_one_startable_draft_study(demo_experiment):
    out = io.StringIO()
    demo.seed(stdout=out)
    demo.seed(stdout=out)
    study = TuningStudy.objects.get()
    assert study.name == demo.STUDY and study.status == StudyStatus.DRAFT and study.experiment == demo_experiment
    assert study.objective_metric == "accuracy" and study.direction == "maximize" and study.strategy == "bayesian"
    assert "already exists" in out.getvalue()


def test_the_demo_seed_skips_quietly_without_the_demo_experiment(db):
    out = io.StringIO()
    demo.seed(stdout=out)
    assert not TuningStudy.objects.exists() and "skipped" in out.getvalue()


def test_the_study_keeper_is_a_beat_task_after_migrate(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="tuning.keep_studies")
    assert task.enabled and task.interval.every == 30 and task.queue == "housekeeping"
