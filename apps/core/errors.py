"""Errors shared by every app's services."""

from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    """The object's current state does not allow the action now: it has ended, or someone (a person,
    a worker, a gate) moved it first. Runs, studies, rollouts, dataset files and feedback raise
    subclasses of this one. The API answers 409 with the message (`apps.core.api.exception_handler`,
    the only place that maps it); admin and forms show it like any other ValidationError, which it
    is: the request was well formed, the moment was not."""

    def __str__(self) -> str:
        # ValidationError's own str is the repr of its message list (['...']); logs and run errors
        # want the sentence.
        if hasattr(self, "error_dict"):
            return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.message_dict.items())
        return " ".join(self.messages)
