"""One version's outcomes as the sequential test reads them: monitoring builds these from its rollups
(apps.monitoring.selectors), the rollout gates compare two of them (apps.deployments.sequential)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmStats:
    """Per-observation summary of one version's outcomes (higher mean is better)."""

    n: int
    mean: float
    variance: float
    bernoulli_outcomes: bool = False

    @classmethod
    def bernoulli(cls, *, successes: float, n: int) -> ArmStats:
        if n <= 0:
            return cls(n=0, mean=0.0, variance=0.0)
        # Half a success and half a failure keep the variance positive at 0% or 100% accuracy.
        smoothed = (successes + 0.5) / (n + 1)
        return cls(n=n, mean=successes / n, variance=smoothed * (1 - smoothed), bernoulli_outcomes=True)

    @classmethod
    def squared_errors(cls, *, n: int, sq_error_sum: float, sq_error_sq_sum: float) -> ArmStats:
        """From the sum of squared errors e^2 and of e^4; the outcome is -e^2."""
        if n <= 0:
            return cls(n=0, mean=0.0, variance=0.0)
        mean_sq = sq_error_sum / n
        variance = max(sq_error_sq_sum / n - mean_sq**2, 0.0) * (n / (n - 1) if n > 1 else 1.0)
        return cls(n=n, mean=-mean_sq, variance=variance)
