"""One contract for every pruner in the registry; what each rule decides on its own is in test_pruners.py.

The service (apps/tuning/services/trials.py) rebuilds a pruner from the study's stored options on
every epoch report, passes the trial among `others`, and lets any worker ask: so a pruner must be a
pure function of its options and the curves, and must refuse bad options by name before a study starts.
"""

import copy
import itertools
import math

import pytest

from apps.tuning.pruners import PRUNERS, Curve, Pruner, PrunerOptionError, get_pruner

EPOCHS = 9


def curve(number, values, state="complete"):
    return Curve(number, state, dict(enumerate(values, start=1)))


# Six finished trials with falling losses, and a mix of states the database holds beside them.
FINISHED = [curve(n, [1.0 + 0.1 * n - 0.05 * e for e in range(EPOCHS)]) for n in range(1, 7)]
HISTORY = [*FINISHED, curve(7, [2.0, 1.9], "pruned"), curve(8, [1.5, 1.4, 1.3], "pending")]
HOPELESS = curve(20, [50.0] * EPOCHS, "pending")
BEST = curve(21, [0.1] * EPOCHS, "pending")

# Per pruner: options that set a warm-up, and the last epoch they protect. "none" protects every epoch.
WARMUP = {
    "none": ({}, EPOCHS),
    "median": ({"n_warmup_epochs": 4, "n_startup_trials": 1}, 4),
    "successive_halving": ({"min_epochs": 4, "reduction_factor": 2}, 3),
}
# The pruners that are meant to stop anything at all.
PRUNING = sorted(set(PRUNERS) - {"none"})
# Every (pruner, integer option, its minimum) in the registry, so a new option is covered as it lands.
INTEGER_OPTIONS = [(n, option, minimum) for n in sorted(PRUNERS) for option, minimum in PRUNERS[n].minimums.items()]


@pytest.fixture(params=sorted(PRUNERS))
def name(request):
    return request.param


def decisions(pruner: Pruner, trial: Curve, others) -> list[bool]:
    return [pruner.should_prune(trial=trial, others=others, epoch=e) for e in range(1, EPOCHS + 1)]


def test_this_contract_knows_the_warm_up_of_every_registered_pruner():
    # A new pruner must say here which options set its warm-up, or the warm-up tests cannot check it.
    assert set(WARMUP) == set(PRUNERS)
    assert INTEGER_OPTIONS, "no pruner has an integer option: the option tests below would check nothing"


def test_every_registered_pruner_is_a_pruner_under_its_own_name(name):
    cls = PRUNERS[name]
    assert issubclass(cls, Pruner) and cls.name == name
    assert isinstance(get_pruner(name), cls)


def test_the_same_options_and_curves_give_the_same_decisions_on_any_worker(name):
    for trial in (HOPELESS, BEST, HISTORY[-1]):
        first = decisions(get_pruner(name), trial, [*HISTORY, trial])
        # A fresh instance (another worker) and a second pass of the same one (no state kept) agree.
        assert decisions(get_pruner(name), trial, [*HISTORY, trial]) == first
        pruner = get_pruner(name)
        decisions(pruner, BEST, [*HISTORY, BEST])
        assert decisions(pruner, trial, [*HISTORY, trial]) == first


def test_the_order_the_database_returns_trials_in_does_not_change_a_decision(name):
    pruner = get_pruner(name, {"reduction_factor": 2} if name == "successive_halving" else None)
    middling = curve(30, [1.3] * EPOCHS, "pending")
    others = [*HISTORY[:5], middling]
    expected = decisions(pruner, middling, others)
    for order in itertools.islice(itertools.permutations(others), 0, None, 37):
        assert decisions(pruner, middling, list(order)) == expected


def test_listing_the_trial_among_the_others_as_the_service_does_changes_nothing(name):
    pruner = get_pruner(name)
    for trial in (HOPELESS, BEST):
        assert decisions(pruner, trial, [*HISTORY, trial]) == decisions(pruner, trial, HISTORY)


def test_the_answer_is_a_plain_bool_and_the_curves_are_left_untouched(name):
    others = copy.deepcopy(HISTORY)
    trial = copy.deepcopy(HOPELESS)
    for answer in decisions(get_pruner(name), trial, others):
        assert type(answer) is bool
    assert others == HISTORY and trial == HOPELESS


def test_a_lone_first_trial_is_never_pruned(name):
    # Nothing to compare with yet: the first trial of a study always trains to its end.
    assert not any(decisions(get_pruner(name), HOPELESS, [HOPELESS]))
    assert not any(decisions(get_pruner(name), HOPELESS, []))


def test_the_best_trial_so_far_is_never_pruned(name):
    assert not any(decisions(get_pruner(name), BEST, [*HISTORY, BEST]))


def test_no_trial_is_pruned_during_the_warm_up_however_bad(name):
    options, protected = WARMUP[name]
    pruner = get_pruner(name, options)
    for epoch in range(1, protected + 1):
        assert not pruner.should_prune(trial=HOPELESS, others=HISTORY, epoch=epoch), epoch


def test_a_hopeless_trial_is_pruned_once_the_warm_up_is_over(name):
    options, protected = WARMUP[name]
    pruned_at = [e for e, pruned in enumerate(decisions(get_pruner(name, options), HOPELESS, HISTORY), 1) if pruned]
    if name in PRUNING:
        assert pruned_at and pruned_at[0] == protected + 1
    else:
        assert pruned_at == []


def test_values_reported_after_the_epoch_asked_about_do_not_count(name):
    pruner = get_pruner(name, WARMUP[name][0])
    _, protected = WARMUP[name]
    epoch = protected + 1 if protected < EPOCHS else EPOCHS
    so_far = curve(40, [50.0] * epoch, "pending")
    # The same trial after a later epoch came in where it suddenly was the best of all.
    with_future = Curve(40, "pending", {**so_far.values, epoch + 1: 0.0})
    assert pruner.should_prune(trial=so_far, others=HISTORY, epoch=epoch) == pruner.should_prune(
        trial=with_future, others=HISTORY, epoch=epoch
    )


def test_the_default_options_are_valid_and_returned_whole(name):
    cls = PRUNERS[name]
    assert cls.validate_options({}) == cls.default_options
    assert get_pruner(name).options == cls.default_options
    assert set(cls.minimums) <= set(cls.default_options)


def test_unknown_options_are_refused_by_name_listing_the_known_ones(name):
    with pytest.raises(PrunerOptionError) as caught:
        get_pruner(name, {"patience": 3})
    assert caught.value.option == "patience"
    assert name in str(caught.value)
    for option in PRUNERS[name].default_options:
        assert option in str(caught.value)


@pytest.mark.parametrize(
    ("pruner_name", "option", "minimum"), INTEGER_OPTIONS, ids=[f"{n}-{o}" for n, o, _ in INTEGER_OPTIONS]
)
@pytest.mark.parametrize("bad", ["3", 2.5, True, None, "below minimum"])
def test_every_integer_option_refuses_a_wrong_type_or_too_small_a_value_by_name(pruner_name, option, minimum, bad):
    value = minimum - 1 if bad == "below minimum" else bad
    with pytest.raises(PrunerOptionError) as caught:
        get_pruner(pruner_name, {option: value})
    assert caught.value.option == option and str(minimum) in str(caught.value)
    # The smallest allowed value itself is accepted.
    assert get_pruner(pruner_name, {option: minimum}).options[option] == minimum


@pytest.mark.parametrize("options", [[("n_warmup_epochs", 1)], "median", 3])
def test_options_that_are_not_an_object_are_refused(name, options):
    with pytest.raises(PrunerOptionError) as caught:
        get_pruner(name, options)
    assert caught.value.option == "pruner_options"


def test_an_unknown_pruner_is_refused_naming_the_known_ones():
    with pytest.raises(PrunerOptionError) as caught:
        get_pruner("hyperband")
    assert caught.value.option == "pruner"
    assert all(known in str(caught.value) for known in PRUNERS)


def test_hopeless_and_best_trials_differ_for_every_pruning_rule():
    # Guards the fixtures above: if the curves stopped telling the rules apart, the contract would be empty.
    assert all(math.isfinite(v) for c in HISTORY for v in c.values.values())
    for name in PRUNING:
        assert any(decisions(get_pruner(name), HOPELESS, HISTORY))
        assert not any(decisions(get_pruner(name), BEST, HISTORY))


def test_a_trial_with_no_number_among_the_others_changes_no_decision_in_any_order(name):
    # Non-finite values are stored as null today; a pruner must not depend on that to stay sane.
    pruner = get_pruner(name, WARMUP[name][0])
    diverged = curve(50, [math.nan] * EPOCHS)
    for trial in (HOPELESS, BEST):
        expected = decisions(pruner, trial, HISTORY)
        assert decisions(pruner, trial, [diverged, *HISTORY]) == expected
        assert decisions(pruner, trial, [*HISTORY, diverged]) == expected
    assert not any(decisions(pruner, diverged, HISTORY)), "a NaN is no evidence either way"
