"""seed_demo's deployment part: champion at 90%, challenger at 10% in a running rollout; idempotent."""
import io

from apps.deployments import demo
from apps.deployments.choices import RolloutStatus
from apps.deployments.models import Deployment, DeploymentEvent, Rollout


def test_the_demo_deploys_the_registry_champion_and_challenger_once(make_version, staff_user, django_capture_on_commit_callbacks):
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
