"""The always-valid sequential test: A/A simulations with a look after every batch of feedback."""

import numpy as np
import pytest

from apps.deployments.sequential import BETTER, CONTINUE, WORSE, ArmStats, msprt

SIMULATIONS = 400
LOOKS = 60
BATCH = 40


def simulate_accuracy(p_champion, p_challenger, *, seed=0, alpha=0.05):
    """Feedback arrives in batches; 10% of it is the challenger's for the first third of the looks
    (stage 10%), half afterwards (stage 50%); the test is consulted after every batch."""
    rng = np.random.default_rng(seed)
    outcomes = {BETTER: 0, WORSE: 0, CONTINUE: 0}
    for _ in range(SIMULATIONS):
        s_a = n_a = s_b = n_b = 0
        decision = CONTINUE
        for look in range(LOOKS):
            n_new_b = rng.binomial(BATCH, 0.1 if look < LOOKS // 3 else 0.5)
            n_new_a = BATCH - n_new_b
            s_a += rng.binomial(n_new_a, p_champion)
            n_a += n_new_a
            s_b += rng.binomial(n_new_b, p_challenger)
            n_b += n_new_b
            result = msprt(
                ArmStats.bernoulli(successes=s_a, n=n_a), ArmStats.bernoulli(successes=s_b, n=n_b), alpha=alpha
            )
            if result.decision != CONTINUE:
                decision = result.decision
                break
        outcomes[decision] += 1
    return {k: v / SIMULATIONS for k, v in outcomes.items()}


def simulate_rmse(sd_champion, sd_challenger, *, seed=0):
    rng = np.random.default_rng(seed)
    outcomes = {BETTER: 0, WORSE: 0, CONTINUE: 0}
    for _ in range(SIMULATIONS):
        a = [0, 0.0, 0.0]
        b = [0, 0.0, 0.0]
        decision = CONTINUE
        for look in range(LOOKS):
            n_b = rng.binomial(BATCH, 0.1 if look < LOOKS // 3 else 0.5)
            errors_a = rng.normal(0, sd_champion, BATCH - n_b) ** 2
            errors_b = rng.normal(0, sd_challenger, n_b) ** 2
            a = [a[0] + len(errors_a), a[1] + errors_a.sum(), a[2] + (errors_a**2).sum()]
            b = [b[0] + len(errors_b), b[1] + errors_b.sum(), b[2] + (errors_b**2).sum()]
            result = msprt(
                ArmStats.squared_errors(n=a[0], sq_error_sum=a[1], sq_error_sq_sum=a[2]),
                ArmStats.squared_errors(n=b[0], sq_error_sum=b[1], sq_error_sq_sum=b[2]),
            )
            if result.decision != CONTINUE:
                decision = result.decision
                break
        outcomes[decision] += 1
    return {k: v / SIMULATIONS for k, v in outcomes.items()}


@pytest.mark.parametrize("accuracy", [0.55, 0.75, 0.92])
def test_two_identical_classifiers_are_falsely_promoted_at_most_5_percent_of_the_time(accuracy):
    outcomes = simulate_accuracy(accuracy, accuracy, seed=int(accuracy * 100))
    assert outcomes[BETTER] <= 0.05
    assert outcomes[BETTER] + outcomes[WORSE] <= 0.05  # any false decision, not only promotions


def test_two_identical_regressors_are_falsely_promoted_at_most_5_percent_of_the_time():
    outcomes = simulate_rmse(1.0, 1.0, seed=3)
    assert outcomes[BETTER] <= 0.05


def test_peeking_after_every_batch_with_a_fixed_z_test_would_have_promoted_far_more_often():
    """The point of the always-valid test: the naive repeated z-test inflates false promotions."""
    rng = np.random.default_rng(7)
    false_promotions = 0
    for _ in range(SIMULATIONS):
        s_a = n_a = s_b = n_b = 0
        for _look in range(LOOKS):
            n_new_b = rng.binomial(BATCH, 0.5)
            s_a += rng.binomial(BATCH - n_new_b, 0.7)
            n_a += BATCH - n_new_b
            s_b += rng.binomial(n_new_b, 0.7)
            n_b += n_new_b
            pooled = (s_a + s_b) / (n_a + n_b)
            z = (s_b / n_b - s_a / n_a) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
            if z > 1.645:
                false_promotions += 1
                break
    assert false_promotions / SIMULATIONS > 0.10
    assert simulate_accuracy(0.7, 0.7, seed=7)[BETTER] <= 0.05


def test_a_clearly_worse_classifier_is_found_worse():
    outcomes = simulate_accuracy(0.75, 0.60, seed=11)
    assert outcomes[WORSE] >= 0.95
    assert outcomes[BETTER] == 0


def test_a_clearly_better_classifier_is_found_better():
    outcomes = simulate_accuracy(0.60, 0.75, seed=12)
    assert outcomes[BETTER] >= 0.95
    assert outcomes[WORSE] == 0


def test_a_regressor_with_a_larger_error_is_found_worse_and_a_smaller_one_better():
    assert simulate_rmse(1.0, 1.4, seed=5)[WORSE] >= 0.95
    assert simulate_rmse(1.4, 1.0, seed=6)[BETTER] >= 0.95


def test_no_decision_before_each_arm_has_the_minimum_feedback():
    result = msprt(ArmStats.bernoulli(successes=10, n=10), ArmStats.bernoulli(successes=0, n=10), min_n=30)
    assert result.decision == CONTINUE
    assert "need 30 each" in result.reason


def test_bad_settings_are_refused():
    arm = ArmStats.bernoulli(successes=40, n=50)
    with pytest.raises(ValueError):
        msprt(arm, arm, alpha=0)
    with pytest.raises(ValueError):
        msprt(arm, arm, tau=0)
