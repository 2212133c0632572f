"""One contract for every search strategy, then what each one promises on its own."""

import math

import numpy as np
import pytest

from apps.tuning.space import SearchSpace
from apps.tuning.strategies import STRATEGIES, StrategyOptionError, TrialRecord, get_strategy

MIXED = SearchSpace.from_spec(
    [
        {"name": "lr", "type": "float", "low": 1e-3, "high": 1.0, "log": True, "grid_points": 3},
        {"name": "depth", "type": "int", "low": 1, "high": 4, "grid_points": 2},
        {"name": "kind", "type": "categorical", "choices": ["a", "b"]},
    ]
)
SMALL_DISCRETE = SearchSpace.from_spec(
    [
        {"name": "depth", "type": "int", "low": 1, "high": 3},
        {"name": "kind", "type": "categorical", "choices": ["a", "b"]},
    ]
)
# Cheap Bayesian settings: the contract is about bookkeeping, not about the surrogate's quality.
FAST = {"bayesian": {"n_initial_points": 3, "n_points": 200, "gp_restarts": 0}}


def make(name, space=MIXED, seed=0):
    return get_strategy(name, space=space, seed=seed, options=FAST.get(name))


def loss(params):
    return (math.log10(params.get("lr", 0.1)) + 1) ** 2 + (params["depth"] - 3) ** 2 + (params["kind"] == "a")


def tell(records, params_list, state="complete"):
    return records + [TrialRecord(p, state, loss(p) if state in ("complete", "pruned") else None) for p in params_list]


@pytest.fixture(params=sorted(STRATEGIES))
def name(request):
    return request.param


def test_suggestions_lie_inside_the_space_with_plain_json_types(name):
    records = []
    for _ in range(6):
        params = make(name).suggest(records, 1)
        assert len(params) == 1 and MIXED.contains(params[0])
        assert type(params[0]["depth"]) is int and type(params[0]["lr"]) is float
        records = tell(records, params)


def test_a_strategy_never_suggests_a_stored_trial_again_and_stops_when_the_space_is_used_up(name):
    strategy = make(name, SMALL_DISCRETE)
    records, states = [], ["complete", "pending", "failed", "pruned", "cancelled"]
    for i in range(6):
        params = strategy.suggest(records, 1)
        assert len(params) == 1
        records = tell(records, params, states[i % len(states)])
    keys = [SMALL_DISCRETE.key(r.params) for r in records]
    assert len(set(keys)) == 6 == SMALL_DISCRETE.cardinality
    assert strategy.suggest(records, 2) == []


def test_a_batch_holds_distinct_points_none_of_them_pending(name):
    strategy = make(name)
    records = tell([], strategy.suggest([], 3))
    pending = strategy.suggest(records, 2)
    records = tell(records, pending, "pending")
    batch = strategy.suggest(records, 3)
    keys = [MIXED.key(p) for p in batch]
    assert len(batch) == 3 and len(set(keys)) == 3
    assert not set(keys) & {MIXED.key(r.params) for r in records}


def test_the_same_seed_and_history_give_the_same_suggestion_so_any_worker_can_continue(name):
    records = tell([], make(name, seed=5).suggest([], 4))
    first = make(name, seed=5).suggest(records, 2)
    again = make(name, seed=5).suggest(records, 2)
    assert first == again


def test_unknown_options_are_refused_by_name(name):
    with pytest.raises(StrategyOptionError) as caught:
        get_strategy(name, space=MIXED, options={"temperature": 3})
    assert caught.value.option == "temperature"


def test_the_grid_strategy_covers_exactly_the_grid_once():
    strategy = make("grid")
    records = []
    while batch := strategy.suggest(records, 4):
        records = tell(records, batch)
    assert strategy.capacity() == MIXED.grid_size() == 12
    assert sorted(map(MIXED.key, (r.params for r in records))) == sorted(map(MIXED.key, MIXED.grid()))


def test_random_search_draws_different_points_for_different_seeds():
    assert make("random", seed=1).suggest([], 3) != make("random", seed=2).suggest([], 3)


@pytest.mark.parametrize(
    "options, option",
    [
        ({"acq_func": "MES"}, "acq_func"),
        ({"n_initial_points": 0}, "n_initial_points"),
        ({"liar": "cl_x"}, "liar"),
        ({"xi": -1}, "xi"),
        ({"initial_point_generator": "grid"}, "initial_point_generator"),
    ],
)
def test_the_bayesian_strategy_refuses_bad_options(options, option):
    with pytest.raises(StrategyOptionError) as caught:
        get_strategy("bayesian", space=MIXED, options=options)
    assert caught.value.option == option


def test_the_bayesian_strategy_homes_in_on_the_optimum_after_its_initial_design():
    space = SearchSpace.from_spec(
        [
            {"name": "x", "type": "float", "low": -5.0, "high": 5.0},
            {"name": "y", "type": "float", "low": -5.0, "high": 5.0},
        ]
    )
    strategy = get_strategy(
        "bayesian", space=space, seed=3, options={"n_initial_points": 5, "gp_restarts": 0, "n_points": 300}
    )
    records = []
    for _ in range(13):
        params = strategy.suggest(records, 1)[0]
        records.append(TrialRecord(params, "complete", (params["x"] - 1.5) ** 2 + (params["y"] + 2) ** 2))
    best = min(records, key=lambda r: r.loss)
    assert best.loss < 0.05
    # The model phase samples close to the optimum far more often than the initial design did.
    distances = [math.hypot(r.params["x"] - 1.5, r.params["y"] + 2) for r in records]
    assert np.median(distances[5:]) < np.median(distances[:5])


def test_the_bayesian_strategy_can_use_a_latin_hypercube_initial_design():
    strategy = get_strategy(
        "bayesian", space=MIXED, seed=2, options={"initial_point_generator": "lhs", "n_initial_points": 4}
    )
    records = []
    for _ in range(4):
        records = tell(records, strategy.suggest(records, 1))
    depths = sorted(r.params["depth"] for r in records)
    assert len({MIXED.key(r.params) for r in records}) == 4
    assert depths[0] <= 2 and depths[-1] >= 3  # a Latin hypercube spreads over the range
