"""Tuning services: everything that writes studies, trials and their events."""

from .state import StudyStateError, publish_study_changed, study_status_change, trial_status_change
from .studies import (
    study_advance,
    study_config_resolve,
    study_create,
    study_pause,
    study_resume,
    study_start,
    study_stop,
    study_update,
    trial_records,
)
from .trials import studies_keep, trial_record_epoch, trial_record_run_end

__all__ = [
    "StudyStateError",
    "publish_study_changed",
    "studies_keep",
    "study_advance",
    "study_config_resolve",
    "study_create",
    "study_pause",
    "study_resume",
    "study_start",
    "study_status_change",
    "study_stop",
    "study_update",
    "trial_record_epoch",
    "trial_record_run_end",
    "trial_records",
    "trial_status_change",
]
