"""Always-valid comparison of a challenger with the champion: the mixture SPRT (mSPRT).

Johari, Pekelis, Walsh, "Always Valid Inference" (2017/2022): with a normal mixing distribution
N(0, tau^2) over the difference of means theta, the likelihood ratio of H1 (theta != 0) against
H0 (theta = 0) for the observed difference d with variance V is

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

and under H0, P(Lambda ever >= 1/alpha) <= alpha, however often it is looked at. So the gate
evaluator may look after every batch of feedback without inflating false promotions; the A/A
simulation in the tests checks this with the plug-in variances used here.

Outcomes are oriented so that higher is better: accuracy for classifiers, minus the squared error
for regressors (so "better" means lower MSE, i.e. lower RMSE).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from apps.monitoring.arm_stats import ArmStats

BETTER = "better"
WORSE = "worse"
CONTINUE = "continue"


@dataclass(frozen=True)
class SequentialResult:
    decision: str
    log_likelihood_ratio: float
    threshold: float
    difference: float
    n_champion: int
    n_challenger: int
    reason: str
    min_n: int = 0

    @property
    def waiting_for_feedback(self) -> bool:
        """Too few labelled rows on an arm for any decision: the comparison has not begun."""
        return self.n_champion < self.min_n or self.n_challenger < self.min_n

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("log_likelihood_ratio", "threshold", "difference"):
            data[key] = round(data[key], 6) if math.isfinite(data[key]) else None
        return data


def msprt(
    champion: ArmStats, challenger: ArmStats, *, alpha: float = 0.05, tau: float = 0.2, min_n: int = 30
) -> SequentialResult:
    """Decides `better`, `worse` or `continue` for the challenger against the champion.

    `tau` is the mixing standard deviation in units of the pooled outcome standard deviation (the
    effect sizes one expects); `min_n` feedback rows per arm are needed before any decision, because
    plug-in variances of a handful of observations are unreliable.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if tau <= 0:
        raise ValueError("tau must be positive")
    threshold = math.log(1 / alpha)
    difference = challenger.mean - champion.mean if champion.n and challenger.n else 0.0
    if champion.n < min_n or challenger.n < min_n:
        return SequentialResult(
            CONTINUE,
            0.0,
            threshold,
            difference,
            champion.n,
            challenger.n,
            f"waiting for feedback: champion {champion.n}, challenger {challenger.n}, need {min_n} each",
            min_n,
        )
    if champion.bernoulli_outcomes and challenger.bernoulli_outcomes:
        # Under H0 both arms share one success rate; its pooled estimate is far steadier than each
        # arm's own when the challenger's arm is small (10% of traffic) and accuracy is high.
        pooled = (champion.mean * champion.n + challenger.mean * challenger.n + 0.5) / (champion.n + challenger.n + 1)
        pooled_variance = pooled * (1 - pooled)
        variance = pooled_variance * (1 / champion.n + 1 / challenger.n)
    else:
        # Same idea for continuous outcomes: the variance of both arms' observations together (the
        # spread between the arms' means included, which only makes the test more careful).
        # Per-arm variances of skewed outcomes such as squared errors run low on a small arm.
        n = champion.n + challenger.n
        grand_mean = (champion.mean * champion.n + challenger.mean * challenger.n) / n
        pooled_variance = (
            (champion.n - 1) * champion.variance
            + (challenger.n - 1) * challenger.variance
            + champion.n * (champion.mean - grand_mean) ** 2
            + challenger.n * (challenger.mean - grand_mean) ** 2
        ) / (n - 1)
        variance = pooled_variance * (1 / champion.n + 1 / challenger.n)
    if pooled_variance <= 0 or variance <= 0:
        if difference == 0:
            return SequentialResult(
                CONTINUE, 0.0, threshold, 0.0, champion.n, challenger.n, "identical outcomes", min_n
            )
        # Both arms are constant yet different: the evidence is as strong as it can be.
        decision = BETTER if difference > 0 else WORSE
        return SequentialResult(
            decision,
            math.inf,
            threshold,
            difference,
            champion.n,
            challenger.n,
            "both versions constant and different",
            min_n,
        )
    tau2 = tau**2 * pooled_variance
    log_lr = 0.5 * math.log(variance / (variance + tau2)) + difference**2 * tau2 / (2 * variance * (variance + tau2))
    if log_lr >= threshold:
        decision = BETTER if difference > 0 else WORSE
        reason = f"challenger {'better' if difference > 0 else 'worse'} (log LR {log_lr:.2f} >= {threshold:.2f})"
    else:
        decision = CONTINUE
        reason = f"not yet conclusive (log LR {log_lr:.2f} < {threshold:.2f})"
    return SequentialResult(decision, log_lr, threshold, difference, champion.n, challenger.n, reason, min_n)
