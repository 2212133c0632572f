"""The rollout state machine: transitions, weights, events, conflicts, and who may act."""

import threading

import pytest
from django.db import connection

from apps.deployments.choices import EventKind, RolloutAction, RolloutStatus, VersionRole
from apps.deployments.models import DeploymentEvent, DeploymentVersion, Rollout
from apps.deployments.services.model_deployment_service import (
    TransitionConflict,
    deployment_rollback,
    rollout_create,
    rollout_transition,
)
from apps.registry.models import ModelAlias

STAGES = [
    {"percent": 10, "min_duration_s": 0, "min_predictions": 0, "min_feedback": 0},
    {"percent": 50, "min_duration_s": 0, "min_predictions": 0, "min_feedback": 0},
    {"percent": 100, "min_duration_s": 0, "min_predictions": 0, "min_feedback": 0},
]


def weights(deployment) -> dict[int, float]:
    return {
        r.model_version_id: r.weight for r in DeploymentVersion.objects.filter(deployment=deployment) if r.weight > 0
    }


@pytest.fixture
def rollout(deployment, challenger, staff_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return rollout_create(deployment=deployment, challenger=challenger, stages=STAGES, user=staff_user)


def test_a_rollout_walks_draft_running_paused_and_completes_with_weights_and_events(
    rollout, champion, challenger, staff_user, django_capture_on_commit_callbacks
):
    deployment = rollout.deployment
    assert rollout.status == RolloutStatus.DRAFT and weights(deployment) == {champion.pk: 100.0}
    generation = deployment.generation
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_transition(rollout=rollout, action=RolloutAction.START, user=staff_user, reason="go")
    assert (rollout.status, rollout.stage_index) == (RolloutStatus.RUNNING, 0)
    assert weights(deployment) == {champion.pk: 90.0, challenger.pk: 10.0}
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PAUSE, user=staff_user)
    assert rollout.status == RolloutStatus.PAUSED and weights(deployment) == {champion.pk: 90.0, challenger.pk: 10.0}
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.RESUME, user=staff_user)
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=0)
    assert rollout.stage_index == 1 and weights(deployment) == {champion.pk: 50.0, challenger.pk: 50.0}
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=1)
    assert weights(deployment) == {challenger.pk: 100.0}
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=2)
    assert rollout.status == RolloutStatus.COMPLETED and rollout.ended_at is not None
    assert DeploymentVersion.objects.get(deployment=deployment, model_version=challenger).role == VersionRole.CHAMPION
    assert DeploymentVersion.objects.get(deployment=deployment, model_version=champion).role == VersionRole.RETIRED
    assert ModelAlias.objects.get(registered_model=challenger.registered_model, alias="champion").version == challenger
    deployment.refresh_from_db()
    assert deployment.generation > generation
    kinds = list(
        DeploymentEvent.objects.filter(rollout=rollout).order_by("created_at", "id").values_list("kind", flat=True)
    )
    assert kinds == [
        EventKind.ROLLOUT_CREATED,
        EventKind.ROLLOUT_STARTED,
        EventKind.ROLLOUT_PAUSED,
        EventKind.ROLLOUT_RESUMED,
        EventKind.STAGE_ADVANCED,
        EventKind.STAGE_ADVANCED,
        EventKind.ROLLOUT_COMPLETED,
    ]
    started = DeploymentEvent.objects.get(rollout=rollout, kind=EventKind.ROLLOUT_STARTED)
    assert started.actor == staff_user and started.reason == "go"
    assert started.from_status == RolloutStatus.DRAFT and started.to_status == RolloutStatus.RUNNING
    assert {t["weight"] for t in started.traffic} == {90.0, 10.0}


def test_moves_the_state_does_not_allow_are_refused_and_change_nothing(rollout, staff_user):
    for action in (RolloutAction.PROMOTE, RolloutAction.PAUSE, RolloutAction.RESUME, RolloutAction.ROLLBACK):
        with pytest.raises(TransitionConflict, match="it is draft"):
            rollout_transition(rollout=rollout, action=action, user=staff_user)
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.ABORT, user=staff_user)
    with pytest.raises(TransitionConflict, match="it is aborted"):
        rollout_transition(rollout=rollout, action=RolloutAction.START, user=staff_user)
    assert Rollout.objects.get(pk=rollout.pk).status == RolloutStatus.ABORTED


def test_a_promote_for_a_stage_the_rollout_has_left_is_a_conflict(rollout, staff_user):
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.START, user=staff_user)
    rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=0)
    with pytest.raises(TransitionConflict, match="someone acted first"):
        rollout_transition(rollout=rollout, action=RolloutAction.PROMOTE, user=staff_user, expected_stage=0)
    assert Rollout.objects.get(pk=rollout.pk).stage_index == 1


def test_a_deployment_has_one_open_rollout_at_a_time_and_the_champion_cannot_challenge_itself(
    rollout, deployment, champion, challenger, staff_user
):
    with pytest.raises(TransitionConflict, match="already has an open rollout"):
        rollout_create(deployment=deployment, challenger=challenger, user=staff_user)
    rollout_transition(rollout=rollout, action=RolloutAction.ABORT, user=staff_user)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="already the champion"):
        rollout_create(deployment=deployment, challenger=champion, user=staff_user)


def test_bad_stages_and_gates_are_refused_naming_the_key(deployment, challenger, staff_user):
    from django.core.exceptions import ValidationError

    cases = [
        ([{"percent": 50}, {"percent": 10}, {"percent": 100}], None, "stages[1].percent"),
        ([{"percent": 10}, {"percent": 50}], None, "stages"),
        ([{"percent": 10, "min_feedback": -1}, {"percent": 100}], None, "stages[0].min_feedback"),
        ([{"percent": 10, "speed": 1}, {"percent": 100}], None, "stages[0].speed"),
        (None, {"alpha": 2}, "gates.alpha"),
        (None, {"colour": 1}, "gates.colour"),
    ]
    for stages, gates, field in cases:
        with pytest.raises(ValidationError) as caught:
            rollout_create(deployment=deployment, challenger=challenger, stages=stages, gates=gates, user=staff_user)
        assert field in caught.value.message_dict, (field, caught.value.message_dict)
    assert not Rollout.objects.exists()


def test_rolling_the_deployment_back_to_any_earlier_version_ends_the_open_rollout(
    rollout, champion, challenger, staff_user, make_version, django_capture_on_commit_callbacks
):
    deployment = rollout.deployment
    rollout = rollout_transition(rollout=rollout, action=RolloutAction.START, user=staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        deployment_rollback(deployment=deployment, model_version=champion, user=staff_user, reason="bad day")
    assert weights(deployment) == {champion.pk: 100.0}
    assert Rollout.objects.get(pk=rollout.pk).status == RolloutStatus.ROLLED_BACK
    event = DeploymentEvent.objects.filter(deployment=deployment).first()
    assert event.kind == EventKind.ROLLED_BACK_TO_VERSION and event.reason == "bad day" and event.actor == staff_user
    other = make_version(model_name="another-model", seed=2)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="is not a version of price-direction"):
        deployment_rollback(deployment=deployment, model_version=other, user=staff_user)


@pytest.mark.django_db(transaction=True)
def test_two_staff_pressing_promote_at_once_advance_the_rollout_once(make_version, staff_user):
    """Separate threads, separate database connections, committed data: the row lock decides."""
    from apps.deployments.services.model_deployment_service import deployment_create

    champion, challenger = make_version(seed=0), make_version(seed=1)
    deployment = deployment_create(name="price-direction", model_version=champion, user=staff_user)
    rollout = rollout_create(deployment=deployment, challenger=challenger, stages=STAGES, user=staff_user, start=True)
    barrier = threading.Barrier(4)
    outcomes = []

    def press():
        try:
            barrier.wait()
            rollout_transition(
                rollout=Rollout.objects.get(pk=rollout.pk),
                action=RolloutAction.PROMOTE,
                user=staff_user,
                expected_stage=0,
                reason="looks good",
            )
            outcomes.append("promoted")
        except TransitionConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "promoted"]
    rollout.refresh_from_db()
    assert rollout.stage_index == 1 and rollout.status == RolloutStatus.RUNNING
    assert DeploymentEvent.objects.filter(rollout=rollout, kind=EventKind.STAGE_ADVANCED).count() == 1
    assert weights(deployment) == {champion.pk: 50.0, challenger.pk: 50.0}
