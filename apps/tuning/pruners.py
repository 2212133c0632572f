"""Pruners: stop unpromising trials early from their intermediate (per-epoch) values.

Like the strategies, a pruner keeps no state: it decides from the curves of the study's trials as
stored in the database. All values are losses (lower is better); the service turns maximised
metrics around before asking.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .strategies.options import OptionError, options_merged


@dataclass(frozen=True)
class Curve:
    """A trial's intermediate losses by epoch (1-based). `state` as in strategies.TrialRecord."""

    number: int
    state: str
    values: Mapping[int, float] = field(default_factory=dict)


class PrunerOptionError(OptionError):
    pass


class Pruner(ABC):
    name: ClassVar[str]
    default_options: ClassVar[dict] = {}
    #: integer option -> its smallest allowed value
    minimums: ClassVar[dict] = {}

    def __init__(self, options: Mapping | None = None):
        self.options = self.validate_options(options or {})

    @classmethod
    def validate_options(cls, options: Mapping) -> dict:
        return options_merged(
            options,
            defaults=cls.default_options,
            minimums=cls.minimums,
            owner=f"the {cls.name} pruner",
            field="pruner_options",
            error=PrunerOptionError,
        )

    @abstractmethod
    def should_prune(self, *, trial: Curve, others: Sequence[Curve], epoch: int) -> bool:
        """Whether `trial`, having just reported `epoch`, should stop now."""


class NoPruner(Pruner):
    name = "none"

    def should_prune(self, *, trial, others, epoch) -> bool:
        return False


class MedianPruner(Pruner):
    """Prune when the trial's best loss so far is worse than the median of the completed trials'
    losses at the same epoch (Optuna's median rule).

    n_startup_trials: no pruning until this many trials have completed;
    n_warmup_epochs: a trial is never pruned at or before this epoch.
    """

    name = "median"
    default_options = {"n_startup_trials": 3, "n_warmup_epochs": 1}
    minimums = {"n_startup_trials": 1, "n_warmup_epochs": 0}

    def should_prune(self, *, trial, others, epoch) -> bool:
        if epoch <= self.options["n_warmup_epochs"]:
            return False
        reported = [v for e, v in trial.values.items() if e <= epoch and math.isfinite(v)]
        if not reported:
            return False
        completed = [c for c in others if c.state == "complete" and c.number != trial.number]
        if len(completed) < self.options["n_startup_trials"]:
            return False
        at_epoch = [_value_at(c, epoch) for c in completed]
        # A NaN in the median would make every comparison false: a diverged trial is no benchmark.
        at_epoch = [v for v in at_epoch if v is not None and math.isfinite(v)]
        if not at_epoch:
            return False
        return min(reported) > float(np.median(at_epoch))


def _value_at(curve: Curve, epoch: int) -> float | None:
    """The curve's value at `epoch`, or its last one before it for a run that stopped early
    (early stopping ends good runs early too; their last value still stands for them)."""
    if epoch in curve.values:
        return curve.values[epoch]
    earlier = [e for e in curve.values if e < epoch]
    return curve.values[max(earlier)] if earlier else None


class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving: rungs at epochs min_epochs * reduction_factor**k; at a rung a
    trial continues only if its loss is within the best 1/reduction_factor of all trials that
    reached that rung so far (the first trials at a rung always continue)."""

    name = "successive_halving"
    default_options = {"min_epochs": 1, "reduction_factor": 3}
    minimums = {"min_epochs": 1, "reduction_factor": 2}

    def rung_epochs(self, up_to: int) -> list[int]:
        rungs, epoch = [], self.options["min_epochs"]
        while epoch <= up_to:
            rungs.append(epoch)
            epoch *= self.options["reduction_factor"]
        return rungs

    def should_prune(self, *, trial, others, epoch) -> bool:
        if epoch not in self.rung_epochs(epoch) or epoch not in trial.values:
            return False
        value = trial.values[epoch]
        if not math.isfinite(value):
            return False  # as the median rule: a value that is no number is no evidence
        # sorted() with a NaN among the values orders them by chance: non-finite ones are left out.
        competing = sorted(
            [
                c.values[epoch]
                for c in others
                if c.number != trial.number and epoch in c.values and math.isfinite(c.values[epoch])
            ]
            + [value]
        )
        keep = max(len(competing) // self.options["reduction_factor"], 1)
        return value > competing[keep - 1]


PRUNERS: dict[str, type[Pruner]] = {cls.name: cls for cls in (NoPruner, MedianPruner, SuccessiveHalvingPruner)}


def get_pruner(name: str, options: Mapping | None = None) -> Pruner:
    try:
        cls = PRUNERS[name]
    except KeyError:
        raise PrunerOptionError("pruner", f"unknown pruner {name!r} (known: {', '.join(PRUNERS)})") from None
    return cls(options)
