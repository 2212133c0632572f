"""Search strategies, one class per `Strategy` choice, all behind `SearchStrategy.suggest`."""

from collections.abc import Mapping

from ..space import SearchSpace
from .base import SearchStrategy, StrategyOptionError, TrialRecord
from .bayesian import BayesianStrategy
from .grid import GridStrategy
from .random_search import RandomStrategy

STRATEGIES: dict[str, type[SearchStrategy]] = {
    cls.name: cls for cls in (GridStrategy, RandomStrategy, BayesianStrategy)
}


def get_strategy(name: str, *, space: SearchSpace, seed: int = 0, options: Mapping | None = None) -> SearchStrategy:
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise StrategyOptionError("strategy", f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})") from None
    return cls(space, seed=seed, options=options)


__all__ = ["STRATEGIES", "SearchStrategy", "StrategyOptionError", "TrialRecord", "get_strategy"]
