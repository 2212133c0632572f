"""seed_demo's deployment part: champion at 90%, challenger at 10% in a running rollout; idempotent."""

import io

from apps.deployments import demo
from apps.deployments.choices import RolloutStatus
from apps.deployments.models import Deployment, DeploymentEvent, Rollout


def test_the_demo_deploys_the_registry_champion_and_challenger_once(
    make_version, staff_user, django_capture_on_commit_callbacks
):
    from apps.registry.services import model_alias_set

    out = io.StringIO()
    demo.seed(stdout=out)
    assert "skipped" in out.getvalue() and not Deployment.objects.exists()
    champion, challenger = make_version(seed=0), make_version(seed=1)
    model_alias_set(model=champion.registered_model, alias="champion", version=champion, user=staff_user)
    model_alias_set(model=champion.registered_model, alias="challenger", version=challenger, user=staff_user)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            demo.seed(stdout=out)
    deployment = Deployment.objects.get(name="price-direction")
    assert {v.model_version_id: v.weight for v in deployment.versions.all()} == {champion.pk: 90.0, challenger.pk: 10.0}
    rollout = Rollout.objects.get()
    assert rollout.status == RolloutStatus.RUNNING and rollout.stage_index == 0
    assert DeploymentEvent.objects.filter(deployment=deployment).count() == 3  # created, rollout created, started
    assert "already exists" in out.getvalue()


def test_the_demo_registers_an_xgboost_candidate_that_loads_but_takes_no_traffic(staff_user, settings, monkeypatch):
    from apps.datasets.services import feature_spec_create
    from apps.registry.loading import load_model_version
    from apps.registry.models import ModelVersion
    from apps.training import demo as training_demo
    from tests.training import factories

    settings.TRAINING_HEARTBEAT_SECONDS = 3600  # runs execute inside the test's transaction
    settings.TRAINING_WRITE_BEHIND = False
    dataset, _, _ = factories.price_dataset(name=training_demo.DATASET, days=200, user=staff_user)
    feature_spec_create(dataset=dataset, name=training_demo.SPEC, spec=factories.TINY_PRICE_SPEC, user=staff_user)
    fast = {"sklearn": {}, "torch": {"epochs": 1, "hidden_size": 4}, "xgboost": {"n_estimators": 10, "max_depth": 2}}
    monkeypatch.setattr(
        training_demo,
        "DEMO_RUNS",
        tuple(
            (framework, model_type, fast[framework])
            for framework, model_type in (("sklearn", "linear"), ("torch", "mlp"), ("xgboost", "gradient_boosting"))
        ),
    )
    out = io.StringIO()
    for _ in range(2):
        training_demo.seed(stdout=out)
    demo.seed(stdout=out)

    xgb_version = ModelVersion.objects.get(registered_model__name="price-direction", framework="xgboost")
    assert xgb_version.tags["demo"] is True and ModelVersion.objects.filter(framework="xgboost").count() == 1
    assert "already registered" in out.getvalue()
    served = Deployment.objects.get(name="price-direction").versions.filter(weight__gt=0)
    assert sorted(v.model_version.framework for v in served) == ["sklearn", "torch"]
    assert load_model_version(xgb_version).trained.booster.num_boosted_rounds() <= 10
