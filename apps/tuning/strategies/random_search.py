from collections.abc import Sequence

from .base import SearchStrategy, TrialRecord


class RandomStrategy(SearchStrategy):
    """Independent draws from the space's priors (log-uniform where a parameter says log).

    Trial k always draws from the generator seeded with (study seed, k), so a study continued by
    another worker after a restart suggests what the first one would have.
    """

    name = "random"

    def suggest(self, trials: Sequence[TrialRecord], n: int = 1) -> list[dict]:
        used = self._used_keys(trials)
        suggestions = []
        for index in range(len(trials), len(trials) + n):
            params = self._fresh_random(used, self._rng(1, index))
            if params is None:
                break
            used.add(self.space.key(params))
            suggestions.append(params)
        return suggestions
