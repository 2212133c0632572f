from collections.abc import Sequence

from .base import SearchStrategy, StrategyOptionError, TrialRecord


class GridStrategy(SearchStrategy):
    """Every combination of the parameters' grid values, each exactly once.

    The order is shuffled with the study's seed, so a budget smaller than the grid still spreads
    over the whole space instead of sweeping the first parameter's low corner.
    """

    name = "grid"
    default_options = {"shuffle": True}

    @classmethod
    def validate_options(cls, options):
        merged = super().validate_options(options)
        if not isinstance(merged["shuffle"], bool):
            raise StrategyOptionError("shuffle", "must be true or false")
        return merged

    def capacity(self) -> int:
        return self.space.grid_size()

    def ordered_grid(self) -> list[dict]:
        points = self.space.grid()
        if self.options["shuffle"]:
            order = self._rng(0).permutation(len(points))
            points = [points[i] for i in order]
        return points

    def suggest(self, trials: Sequence[TrialRecord], n: int = 1) -> list[dict]:
        used = self._used_keys(trials)
        suggestions = []
        for params in self.ordered_grid():
            if len(suggestions) >= n:
                break
            key = self.space.key(params)
            if key not in used:
                used.add(key)
                suggestions.append(params)
        return suggestions
