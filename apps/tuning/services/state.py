"""The one place a study's or a trial's status changes. Every change writes a TuningEvent."""

from django.db import transaction
from django.utils import timezone

from apps.core.errors import StateConflict
from apps.core.live import STUDIES_GROUP

from ..choices import STUDY_TERMINAL, STUDY_TRANSITIONS, TRIAL_TERMINAL, TRIAL_TRANSITIONS, StudyStatus, TrialStatus
from ..models import Trial, TuningEvent, TuningStudy


class StudyStateError(StateConflict):
    """A status change the current status does not allow (e.g. pausing a finished study)."""


def publish_study_changed(study_id: int) -> None:
    """Tells dashboards (group tuning-studies) once the current transaction commits."""

    def send():
        from apps.core import live

        live.publish(STUDIES_GROUP, {"type": "study.changed", "study": study_id})

    transaction.on_commit(send)


@transaction.atomic
def study_status_change(
    *, study: TuningStudy, to: str, reason: str = "", user=None, fields: dict | None = None
) -> TuningStudy:
    """Moves the study to `to` under a row lock and records why. Keeps the wall-time budget's
    bookkeeping: only time spent RUNNING counts. Returns the locked, updated study."""
    locked = TuningStudy.objects.select_for_update().get(pk=study.pk)
    if to not in STUDY_TRANSITIONS[locked.status]:
        raise StudyStateError({"status": f"study {locked.name!r} is {locked.status}; it cannot become {to}."})
    now = timezone.now()
    previous = locked.status
    changed = {"status": to, **(fields or {})}
    if previous == StudyStatus.RUNNING and locked.running_since is not None:
        changed["running_seconds"] = locked.elapsed_seconds(now)
        changed["running_since"] = None
    if to == StudyStatus.RUNNING:
        changed["running_since"] = now
        changed["started_at"] = locked.started_at or now
    if to in STUDY_TERMINAL:
        changed["finished_at"] = now
    for name, value in changed.items():
        setattr(locked, name, value)
    locked.save(update_fields=[*changed, "updated_at"])
    TuningEvent.objects.create(
        study=locked, from_status=previous, to_status=to, reason=reason[:4000], actor=user, created_at=now
    )
    publish_study_changed(locked.pk)
    return locked


@transaction.atomic
def trial_status_change(*, trial: Trial, to: str, reason: str = "", user=None, fields: dict | None = None) -> Trial:
    """Moves the trial to `to` under a row lock and records why. Returns the locked, updated trial."""
    locked = Trial.objects.select_for_update().get(pk=trial.pk)
    if to not in TRIAL_TRANSITIONS[locked.status]:
        raise StudyStateError({"status": f"trial #{locked.number} is {locked.status}; it cannot become {to}."})
    now = timezone.now()
    previous = locked.status
    changed = {"status": to, **(fields or {})}
    if to == TrialStatus.RUNNING:
        changed["started_at"] = locked.started_at or now
    if to in TRIAL_TERMINAL:
        changed["finished_at"] = now
        changed.setdefault("started_at", locked.started_at or now)
    for name, value in changed.items():
        setattr(locked, name, value)
    locked.save(update_fields=[*changed, "updated_at"])
    TuningEvent.objects.create(
        study_id=locked.study_id,
        trial=locked,
        from_status=previous,
        to_status=to,
        reason=reason[:4000],
        actor=user,
        created_at=now,
    )
    publish_study_changed(locked.study_id)
    return locked


@transaction.atomic
def trial_create(*, study: TuningStudy, number: int, params: dict, reason: str) -> Trial:
    """A new QUEUED trial, with the event that says where it came from."""
    trial = Trial.objects.create(study=study, number=number, params=params, status=TrialStatus.QUEUED)
    TuningEvent.objects.create(study=study, trial=trial, from_status="", to_status=TrialStatus.QUEUED, reason=reason)
    publish_study_changed(study.pk)
    return trial
