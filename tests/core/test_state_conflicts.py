"""One convention for state conflicts (apps/CONTRACTS.md, "core → every app: errors"): every app's
state error is a StateConflict, and the API's exception handler alone turns one into a 409."""

import pytest
from django.core.exceptions import ValidationError

from apps.core.api import exception_handler
from apps.core.errors import StateConflict
from apps.deployments.services.traffic import TransitionConflict
from apps.monitoring.services.feedback import FeedbackConflict
from apps.training.services.runs import RunStateError
from apps.tuning.services.state import StudyStateError


@pytest.mark.parametrize("error", [RunStateError, StudyStateError, TransitionConflict, FeedbackConflict])
def test_every_apps_state_error_is_a_state_conflict(error):
    assert issubclass(error, StateConflict) and issubclass(error, ValidationError)


def test_a_state_conflict_naming_a_field_is_a_409_with_the_sentence_and_the_field():
    response = exception_handler(RunStateError({"status": "run 3 already ended (succeeded)."}), {})
    assert response.status_code == 409
    assert response.data == {"detail": "status: run 3 already ended (succeeded).", "field": "status"}


def test_a_state_conflict_without_a_field_is_a_409_with_its_message_and_reads_as_a_sentence():
    error = TransitionConflict("rollout 4 is paused and controls the weights; pause or end it first")
    assert str(error) == "rollout 4 is paused and controls the weights; pause or end it first"
    response = exception_handler(error, {})
    assert response.status_code == 409 and response.data == {"detail": str(error)}


def test_any_other_validation_error_stays_a_400_naming_the_field():
    response = exception_handler(ValidationError({"seed": "must be a whole number."}), {})
    assert response.status_code == 400 and response.data == {"seed": ["must be a whole number."]}
