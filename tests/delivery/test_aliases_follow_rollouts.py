"""The registry's champion and challenger aliases follow each rollout, every move naming it."""

import pytest

from apps.deployments.choices import RolloutAction
from apps.deployments.services.rollouts import rollout_create, rollout_transition
from apps.registry.models import AliasEvent
from apps.registry.selectors import model_aliases
from apps.registry.services import model_alias_set

pytestmark = pytest.mark.usefixtures("inline_runs")


def _aliases(version):
    return model_aliases(model=version.registered_model)


def test_a_rollout_sets_the_challenger_and_its_completion_moves_the_champion(
    deployment, champion, challenger, staff_user
):
    rollout = rollout_create(
        deployment=deployment,
        challenger=challenger,
        stages=[{"percent": 50}, {"percent": 100}],
        user=staff_user,
        start=True,
    )
    assert _aliases(champion) == {"champion": champion.version, "challenger": challenger.version}
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=0)
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=1)
    assert _aliases(champion) == {"champion": challenger.version}
    moves = AliasEvent.objects.filter(rollout_id=rollout.pk).order_by("created_at", "pk")
    assert [(e.alias, e.to_version_id) for e in moves] == [
        ("champion", champion.pk),
        ("challenger", challenger.pk),
        ("champion", challenger.pk),
        ("challenger", None),
    ]
    assert all(f"rollout {rollout.pk}" in e.reason and e.actor == staff_user for e in moves)


def test_a_rolled_back_rollout_keeps_the_champion_and_clears_the_challenger(deployment, champion, challenger):
    rollout = rollout_create(deployment=deployment, challenger=challenger, start=True)
    rollout_transition(
        rollout=rollout,
        action=RolloutAction.ROLLBACK,
        actor_label="gate evaluator",
        expected_stage=0,
        reason="accuracy gate failed",
    )
    assert _aliases(champion) == {"champion": champion.version}
    cleared = AliasEvent.objects.get(rollout_id=rollout.pk, alias="challenger", to_version=None)
    assert "rolled back" in cleared.reason and cleared.actor is None


def test_a_challenger_alias_moved_by_hand_is_left_alone_when_the_rollout_ends(
    deployment, champion, challenger, make_version
):
    other = make_version(seed=2)
    rollout = rollout_create(deployment=deployment, challenger=challenger, start=True)
    model_alias_set(model=champion.registered_model, alias="challenger", version=other, reason="staff's own pick")
    rollout_transition(rollout=rollout, action=RolloutAction.ABORT, reason="not now")
    assert _aliases(champion)["challenger"] == other.version
