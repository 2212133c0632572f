import pytest

from apps.tuning.pruners import Curve, PrunerOptionError, get_pruner


def curve(number, values, state="complete"):
    return Curve(number, state, dict(enumerate(values, start=1)))


FINISHED = [curve(1, [5, 4, 3, 2]), curve(2, [6, 5, 4, 3]), curve(3, [7, 6, 5, 4])]


def test_the_median_rule_prunes_a_trial_worse_than_the_median_at_the_same_epoch():
    pruner = get_pruner("median", {"n_startup_trials": 3, "n_warmup_epochs": 1})
    bad = curve(4, [9, 8], state="pending")
    good = curve(5, [5, 4.5], state="pending")
    assert pruner.should_prune(trial=bad, others=[*FINISHED, bad], epoch=2)
    assert not pruner.should_prune(trial=good, others=[*FINISHED, good], epoch=2)


def test_the_median_rule_waits_for_its_startup_trials_and_warmup_epochs():
    bad = curve(4, [9, 8], state="pending")
    assert not get_pruner("median", {"n_startup_trials": 4}).should_prune(trial=bad, others=FINISHED, epoch=2)
    assert not get_pruner("median", {"n_warmup_epochs": 2}).should_prune(trial=bad, others=FINISHED, epoch=2)


def test_the_median_rule_judges_by_the_best_value_so_far():
    # A noisy last epoch does not prune a trial that was already below the median.
    wobbly = curve(4, [4.2, 3.5, 4.6], state="pending")
    assert not get_pruner("median").should_prune(trial=wobbly, others=FINISHED, epoch=3)


def test_a_trial_that_stopped_early_counts_with_its_last_value():
    early = [curve(1, [2, 1]), curve(2, [3, 2]), curve(3, [4, 3])]  # early stopping after 2 epochs
    bad = curve(4, [9, 9, 9], state="pending")
    assert get_pruner("median").should_prune(trial=bad, others=early, epoch=3)


def test_successive_halving_keeps_the_best_third_at_each_rung():
    pruner = get_pruner("successive_halving", {"min_epochs": 1, "reduction_factor": 3})
    assert pruner.rung_epochs(10) == [1, 3, 9]
    others = [curve(n, [v]) for n, v in ((1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0))]
    assert not pruner.should_prune(trial=curve(6, [1.5], "pending"), others=others, epoch=1)
    assert pruner.should_prune(trial=curve(6, [3.5], "pending"), others=others, epoch=1)
    assert not pruner.should_prune(trial=curve(6, [1.5, 9.0], "pending"), others=others, epoch=2)  # not a rung


def test_successive_halving_lets_the_first_trial_at_a_rung_through():
    pruner = get_pruner("successive_halving")
    assert not pruner.should_prune(trial=curve(1, [100.0], "pending"), others=[], epoch=1)


@pytest.mark.parametrize(
    "name, options, option",
    [
        ("median", {"n_startup_trials": 0}, "n_startup_trials"),
        ("median", {"patience": 2}, "patience"),
        ("successive_halving", {"reduction_factor": 1}, "reduction_factor"),
        ("none", {"anything": 1}, "anything"),
    ],
)
def test_bad_pruner_options_are_refused_by_name(name, options, option):
    with pytest.raises(PrunerOptionError) as caught:
        get_pruner(name, options)
    assert caught.value.option == option
