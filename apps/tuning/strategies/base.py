"""The search-strategy interface: suggest the next parameters from the stored trials.

A strategy keeps no state between calls. Every `suggest` receives the study's trials as records
(the "tell" half of ask/tell is the database), so any worker can continue any study, and a process
restart loses nothing. Suggestions are deterministic for a given seed and history.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..space import SearchSpace
from .options import OptionError, options_merged

TrialState = Literal["pending", "complete", "pruned", "failed", "cancelled"]


@dataclass(frozen=True)
class TrialRecord:
    """What a strategy may know about one trial.

    `loss` is the objective turned so that lower is better (the negated value when maximising);
    for a pruned trial it is the last intermediate loss, otherwise None. Cancelled trials (stopped
    by a person) say nothing about their point; strategies only avoid suggesting it again.
    """

    params: Mapping
    state: TrialState
    loss: float | None = None


class StrategyOptionError(OptionError):
    pass


class SearchStrategy(ABC):
    name: ClassVar[str]
    #: option name -> default; anything else in `options` is refused.
    default_options: ClassVar[dict] = {}
    #: integer option -> its smallest allowed value
    minimums: ClassVar[dict] = {}

    def __init__(self, space: SearchSpace, *, seed: int = 0, options: Mapping | None = None):
        self.space = space
        self.seed = int(seed)
        self.options = self.validate_options(options or {})

    @classmethod
    def validate_options(cls, options: Mapping) -> dict:
        """Returns the options merged over the defaults; raises StrategyOptionError naming a bad one."""
        return options_merged(
            options,
            defaults=cls.default_options,
            minimums=cls.minimums,
            owner=f"the {cls.name} strategy",
            field="strategy_options",
            error=StrategyOptionError,
        )

    def capacity(self) -> int | None:
        """How many distinct trials this strategy can ever suggest (None: unbounded)."""
        return self.space.cardinality

    @abstractmethod
    def suggest(self, trials: Sequence[TrialRecord], n: int = 1) -> list[dict]:
        """Up to `n` new parameter sets, none equal to a stored trial's; fewer when the space is used up."""

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, *stream])

    def _used_keys(self, trials: Sequence[TrialRecord]) -> set:
        return {self.space.key(t.params) for t in trials}

    def _fresh_random(self, used: set, rng: np.random.Generator, attempts: int = 200) -> dict | None:
        """A random point not in `used` (None when the tries run out: a nearly exhausted discrete space)."""
        for _ in range(attempts):
            params = self.space.sample(rng)
            if self.space.key(params) not in used:
                return params
        return None
