"""Search spaces: integer, float (optionally log-scale) and categorical parameters.

A space is stored on the study as a JSON list, one object per parameter:

    {"name": "learning_rate", "type": "float", "low": 1e-4, "high": 0.3, "log": true}
    {"name": "max_depth", "type": "int", "low": 2, "high": 8, "grid_points": 4}
    {"name": "loss", "type": "categorical", "choices": ["squared_error", "absolute_error"]}

`grid_points` (numeric parameters only, default 5) says how many values the grid strategy tries.
`SearchSpace.from_spec` refuses anything malformed with a SearchSpaceError naming the parameter.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("int", "float", "categorical")
DEFAULT_GRID_POINTS = 5
_NUMERIC_KEYS = {"name", "type", "low", "high", "log", "grid_points"}
_CATEGORICAL_KEYS = {"name", "type", "choices"}


class SearchSpaceError(ValueError):
    """A search space (or one of its parameters) is invalid; `param` names the culprit or is None."""

    def __init__(self, param: str | None, message: str):
        self.param = param
        self.message = message
        super().__init__(f"parameter {param!r}: {message}" if param else message)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _canonical(value):
    """A hashable, rounding-tolerant form of a parameter value for duplicate detection."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    return value


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()
    grid_points: int = DEFAULT_GRID_POINTS

    @classmethod
    def from_dict(cls, raw: Any, position: int) -> Parameter:
        if not isinstance(raw, Mapping):
            raise SearchSpaceError(None, f"entry {position} must be an object with name and type")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SearchSpaceError(None, f"entry {position} needs a non-empty 'name'")
        kind = raw.get("type")
        if kind not in KINDS:
            raise SearchSpaceError(name, f"type must be one of {', '.join(KINDS)}, got {kind!r}")
        allowed = _CATEGORICAL_KEYS if kind == "categorical" else _NUMERIC_KEYS
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise SearchSpaceError(name, f"unknown key(s) {', '.join(unknown)} for a {kind} parameter")
        if kind == "categorical":
            return cls._categorical(name, raw.get("choices"))
        return cls._numeric(name, kind, raw)

    @classmethod
    def _categorical(cls, name, choices) -> Parameter:
        if not isinstance(choices, list) or not choices:
            raise SearchSpaceError(name, "choices must be a non-empty list")
        for choice in choices:
            if not (isinstance(choice, (str, bool)) or _is_number(choice) or choice is None):
                raise SearchSpaceError(name, f"choice {choice!r} is not a string, number, boolean or null")
        keys = [(type(c).__name__, _canonical(c)) for c in choices]
        if len(set(keys)) != len(keys):
            raise SearchSpaceError(name, "choices contain duplicates")
        if len(choices) < 2:
            raise SearchSpaceError(name, "needs at least two choices (put a constant in fixed_params)")
        return cls(name=name, kind="categorical", choices=tuple(choices))

    @classmethod
    def _numeric(cls, name, kind, raw) -> Parameter:
        low, high = raw.get("low"), raw.get("high")
        for label, value in (("low", low), ("high", high)):
            if not _is_number(value):
                raise SearchSpaceError(name, f"{label} must be a finite number, got {value!r}")
            if kind == "int" and float(value) != int(value):
                raise SearchSpaceError(name, f"{label} must be a whole number for an int parameter, got {value!r}")
        if low > high:
            raise SearchSpaceError(name, f"low ({low}) is greater than high ({high})")
        if low == high:
            raise SearchSpaceError(name, f"the range is empty: low equals high ({low}); put a constant in fixed_params")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise SearchSpaceError(name, "log must be true or false")
        if log and low <= 0:
            raise SearchSpaceError(name, f"a log-scale range needs positive bounds, got low={low}")
        grid_points = raw.get("grid_points", DEFAULT_GRID_POINTS)
        if not isinstance(grid_points, int) or isinstance(grid_points, bool) or grid_points < 2:
            raise SearchSpaceError(name, f"grid_points must be an integer of at least 2, got {grid_points!r}")
        if kind == "int":
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        return cls(name=name, kind=kind, low=low, high=high, log=log, grid_points=grid_points)

    def to_dict(self) -> dict:
        if self.kind == "categorical":
            return {"name": self.name, "type": "categorical", "choices": list(self.choices)}
        data = {"name": self.name, "type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.grid_points != DEFAULT_GRID_POINTS:
            data["grid_points"] = self.grid_points
        return data

    @property
    def cardinality(self) -> int | None:
        if self.kind == "categorical":
            return len(self.choices)
        if self.kind == "int":
            return self.high - self.low + 1
        return None

    def dimension(self):
        from skopt.space import Categorical, Integer, Real

        prior = "log-uniform" if self.log else "uniform"
        if self.kind == "categorical":
            return Categorical(list(self.choices), name=self.name)
        if self.kind == "int":
            return Integer(self.low, self.high, prior=prior, name=self.name)
        return Real(self.low, self.high, prior=prior, name=self.name)

    def sample(self, rng: np.random.Generator):
        if self.kind == "categorical":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            if self.log:
                # Log-uniform over [low, high + 1) then floor: each integer gets its log-width share.
                value = math.floor(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1))))
                return int(min(max(value, self.low), self.high))
            return int(rng.integers(self.low, self.high + 1))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def grid_values(self) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        spaced = np.geomspace if self.log else np.linspace
        if self.kind == "int":
            if self.cardinality <= self.grid_points:
                return list(range(self.low, self.high + 1))
            return sorted({int(round(v)) for v in spaced(self.low, self.high, self.grid_points)})
        return [float(v) for v in spaced(self.low, self.high, self.grid_points)]

    def coerce(self, value):
        """Plain JSON types: skopt hands back numpy scalars."""
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        is_bool = isinstance(value, (bool, np.bool_))
        for choice in self.choices:
            # True == 1 in Python: a boolean only matches a boolean choice.
            if choice == value and isinstance(choice, bool) == is_bool:
                return choice
        raise SearchSpaceError(self.name, f"{value!r} is not one of the choices")

    def contains(self, value) -> bool:
        if self.kind == "categorical":
            try:
                self.coerce(value)
            except SearchSpaceError:
                return False
            return True
        if not _is_number(value) or (self.kind == "int" and float(value) != int(value)):
            return False
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    @classmethod
    def from_spec(cls, spec: Any) -> SearchSpace:
        if not isinstance(spec, list) or not spec:
            raise SearchSpaceError(None, "the search space must be a non-empty list of parameters")
        parameters = tuple(Parameter.from_dict(raw, position) for position, raw in enumerate(spec))
        seen = set()
        for parameter in parameters:
            if parameter.name in seen:
                raise SearchSpaceError(parameter.name, "appears more than once")
            seen.add(parameter.name)
        return cls(parameters)

    def to_spec(self) -> list[dict]:
        return [p.to_dict() for p in self.parameters]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def is_numeric(self) -> bool:
        return all(p.kind != "categorical" for p in self.parameters)

    @property
    def cardinality(self) -> int | None:
        """Number of distinct points, or None when a float parameter makes it unbounded."""
        total = 1
        for parameter in self.parameters:
            if parameter.cardinality is None:
                return None
            total *= parameter.cardinality
        return total

    def dimensions(self) -> list:
        return [p.dimension() for p in self.parameters]

    def sample(self, rng: np.random.Generator) -> dict:
        return {p.name: p.sample(rng) for p in self.parameters}

    def grid(self) -> list[dict]:
        value_lists = [p.grid_values() for p in self.parameters]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*value_lists)]

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.parameters)

    def to_point(self, params: Mapping) -> list:
        return [params[name] for name in self.names]

    def from_point(self, point: Sequence) -> dict:
        return {p.name: p.coerce(value) for p, value in zip(self.parameters, point)}

    def key(self, params: Mapping) -> tuple:
        return tuple((name, type(params.get(name)).__name__, _canonical(params.get(name))) for name in self.names)

    def contains(self, params: Mapping) -> bool:
        return set(params) == set(self.names) and all(p.contains(params[p.name]) for p in self.parameters)
