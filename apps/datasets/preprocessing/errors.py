"""Exceptions of the preprocessing contract (see apps/CONTRACTS.md)."""


class PreprocessingError(ValueError):
    """Base class: anything wrong with a spec, the data or a prediction request."""


class SpecError(PreprocessingError):
    """A feature spec that cannot run; names the step (index) and the key at fault."""

    def __init__(self, message: str, *, step: int | None = None, key: str | None = None):
        self.step = step
        self.key = key
        self.message = message
        where = []
        if step is not None:
            where.append(f"step {step}")
        if key is not None:
            where.append(f"'{key}'")
        super().__init__(f"{' '.join(where)}: {message}" if where else message)

    def as_dict(self) -> dict:
        return {"step": self.step, "key": self.key, "message": self.message}


class DataError(PreprocessingError):
    """Training data that cannot be prepared (too few rows, a missing column, one class only...)."""


class InvalidInput(PreprocessingError):
    """Rows sent for prediction that cannot be transformed; `field` names the raw column."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InsufficientHistory(PreprocessingError):
    """A prediction needs `needed` rows of history for an entity but the request had `got`."""

    def __init__(self, needed: int, got: int, entity=None):
        self.needed = needed
        self.got = got
        self.entity = entity
        who = f" for {entity!r}" if entity is not None else ""
        super().__init__(f"need {needed} rows of history{who}, got {got}")
