"""The errors the prediction path raises past a request's parsing: here, apart from predict.py, so
protocol.describe_error can map them to statuses without importing the predictor."""

from __future__ import annotations

from .inputs import InputError


class PredictionInputError(InputError):
    """Bad input, attributed to the version that was chosen (the API answers 400)."""

    def __init__(self, field: str, message: str, *, version: str | None = None, needed_rows: int | None = None):
        super().__init__(field, message)
        self.version = version
        self.needed_rows = needed_rows


class PredictionFailed(RuntimeError):
    """The model raised on valid input (the API answers 500 and the error counts against the version)."""
