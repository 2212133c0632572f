"""Typed parameters of spec steps: each checks one value and names the step and key when it is wrong."""

from dataclasses import dataclass
from typing import Any

from .errors import SpecError

_MISSING = object()


@dataclass(frozen=True)
class Param:
    kind: str  # int | ints | number | enum | enums | column | columns | columns_or_all | name
    required: bool = False
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    max_items: int = 50

    def clean(self, value, *, step, key):
        if self.kind == "int":
            return self._int(value, step=step, key=key)
        if self.kind == "ints":
            items = self._list(value, step=step, key=key)
            out = [self._int(v, step=step, key=key) for v in items]
            if len(set(out)) != len(out):
                raise SpecError("values must not repeat", step=step, key=key)
            return out
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"must be a number, got {value!r}", step=step, key=key)
            self._bounds(value, step=step, key=key)
            return float(value)
        if self.kind == "enum":
            if value not in self.choices:
                raise SpecError(f"must be one of {', '.join(self.choices)}; got {value!r}", step=step, key=key)
            return value
        if self.kind == "enums":
            items = self._list(value, step=step, key=key)
            for item in items:
                if item not in self.choices:
                    raise SpecError(f"must be among {', '.join(self.choices)}; got {item!r}", step=step, key=key)
            if len(set(items)) != len(items):
                raise SpecError("values must not repeat", step=step, key=key)
            return list(items)
        if self.kind in ("column", "name"):
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"must be a column name, got {value!r}", step=step, key=key)
            return value
        if self.kind == "columns_or_all" and value == "*":
            return "*"
        if self.kind in ("columns", "columns_or_all"):
            items = self._list(value, step=step, key=key)
            for item in items:
                if not isinstance(item, str) or not item.strip():
                    raise SpecError(f"must list column names, got {item!r}", step=step, key=key)
            if len(set(items)) != len(items):
                raise SpecError("columns must not repeat", step=step, key=key)
            return list(items)
        raise AssertionError(self.kind)

    def _list(self, value, *, step, key):
        if not isinstance(value, list) or not value:
            raise SpecError("must be a non-empty list", step=step, key=key)
        if len(value) > self.max_items:
            raise SpecError(f"at most {self.max_items} items", step=step, key=key)
        return value

    def _int(self, value, *, step, key):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"must be an integer, got {value!r}", step=step, key=key)
        self._bounds(value, step=step, key=key)
        return value

    def _bounds(self, value, *, step, key):
        if self.low is not None and value < self.low:
            raise SpecError(f"must be at least {self.low:g}, got {value!r}", step=step, key=key)
        if self.high is not None and value > self.high:
            raise SpecError(f"must be at most {self.high:g}, got {value!r}", step=step, key=key)


def clean_params(schema: dict[str, Param], raw: dict, *, step, allowed_extra=("op",)) -> dict:
    unknown = sorted(set(raw) - set(schema) - set(allowed_extra))
    if unknown:
        raise SpecError(f"unknown key (allowed: {', '.join(sorted(schema))})", step=step, key=unknown[0])
    out = {}
    for key, param in schema.items():
        value = raw.get(key, _MISSING)
        if value is _MISSING or value is None:
            if param.required:
                raise SpecError("is required", step=step, key=key)
            out[key] = param.default
            continue
        out[key] = param.clean(value, step=step, key=key)
    return out
