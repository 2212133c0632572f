import math

import numpy as np
import pytest

from apps.tuning.space import SearchSpace, SearchSpaceError

FULL = [
    {"name": "alpha", "type": "float", "low": 1e-4, "high": 10.0, "log": True},
    {"name": "depth", "type": "int", "low": 2, "high": 8},
    {"name": "loss", "type": "categorical", "choices": ["squared_error", "absolute_error"]},
]


def test_it_reads_integer_float_log_scale_and_categorical_parameters():
    space = SearchSpace.from_spec(FULL)
    assert space.names == ["alpha", "depth", "loss"]
    assert [p.kind for p in space.parameters] == ["float", "int", "categorical"]
    assert space.parameters[0].log and not space.parameters[1].log
    assert SearchSpace.from_spec(space.to_spec()) == space


@pytest.mark.parametrize(
    "spec, param, words",
    [
        ([{"name": "a", "type": "float", "low": 1.0, "high": 1.0}], "a", "range is empty"),
        ([{"name": "a", "type": "float", "low": 2.0, "high": 1.0}], "a", "greater than high"),
        ([{"name": "n", "type": "int", "low": 9, "high": 3}], "n", "greater than high"),
        ([{"name": "lr", "type": "float", "low": 0.0, "high": 1.0, "log": True}], "lr", "positive bounds"),
        ([{"name": "lr", "type": "float", "low": -1.0, "high": 1.0, "log": True}], "lr", "positive bounds"),
        ([{"name": "n", "type": "int", "low": 1.5, "high": 3}], "n", "whole number"),
        ([{"name": "a", "type": "float", "low": "x", "high": 3}], "a", "finite number"),
        ([{"name": "a", "type": "float", "low": 0, "high": 3, "step": 1}], "a", "unknown key"),
        ([{"name": "c", "type": "categorical", "choices": []}], "c", "non-empty list"),
        ([{"name": "c", "type": "categorical", "choices": ["x"]}], "c", "at least two"),
        ([{"name": "c", "type": "categorical", "choices": ["x", "x"]}], "c", "duplicates"),
        ([{"name": "c", "type": "categorical", "choices": [[1], 2]}], "c", "not a string"),
        ([{"name": "a", "type": "bool"}], "a", "type must be one of"),
        ([{"name": "a", "type": "int", "low": 0, "high": 3, "grid_points": 1}], "a", "grid_points"),
        ([FULL[0], FULL[0]], "alpha", "more than once"),
    ],
)
def test_it_refuses_an_invalid_parameter_and_names_it(spec, param, words):
    with pytest.raises(SearchSpaceError) as caught:
        SearchSpace.from_spec(spec)
    assert caught.value.param == param
    assert words in str(caught.value) and repr(param) in str(caught.value)


@pytest.mark.parametrize("spec", [[], {}, "alpha", None, [{"type": "int", "low": 0, "high": 1}], [3]])
def test_it_refuses_a_space_that_is_not_a_list_of_named_parameters(spec):
    with pytest.raises(SearchSpaceError):
        SearchSpace.from_spec(spec)


def test_the_grid_spaces_log_parameters_geometrically_and_takes_every_small_integer():
    space = SearchSpace.from_spec(
        [
            {"name": "alpha", "type": "float", "low": 0.01, "high": 100.0, "log": True, "grid_points": 5},
            {"name": "depth", "type": "int", "low": 2, "high": 4},
            {"name": "loss", "type": "categorical", "choices": ["a", "b"]},
        ]
    )
    assert space.parameters[0].grid_values() == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])
    assert space.parameters[1].grid_values() == [2, 3, 4]
    assert space.grid_size() == 5 * 3 * 2 == len(space.grid())
    assert len({space.key(p) for p in space.grid()}) == 30


def test_samples_stay_in_bounds_and_log_parameters_spread_over_the_decades():
    space = SearchSpace.from_spec(FULL)
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(2000)]
    assert all(space.contains(s) for s in samples)
    assert all(isinstance(s["depth"], int) and isinstance(s["alpha"], float) for s in samples)
    decades = np.log10([s["alpha"] for s in samples])
    # Log-uniform over 1e-4..10: each of the five decades gets about a fifth of the draws.
    counts = np.histogram(decades, bins=5, range=(-4, 1))[0]
    assert counts.min() > 300
    assert {s["loss"] for s in samples} == {"squared_error", "absolute_error"}


def test_log_scale_integers_favour_small_values():
    space = SearchSpace.from_spec([{"name": "n", "type": "int", "low": 1, "high": 1000, "log": True}])
    rng = np.random.default_rng(1)
    values = [space.sample(rng)["n"] for _ in range(2000)]
    assert min(values) >= 1 and max(values) <= 1000
    assert 20 < np.median(values) < 50  # the geometric middle of 1..1000 is ~32
    assert math.isclose(np.mean(np.array(values) < 10), 1 / 3, abs_tol=0.05)


def test_a_boolean_choice_is_not_confused_with_the_number_one():
    space = SearchSpace.from_spec([{"name": "c", "type": "categorical", "choices": [True, 1, "1"]}])
    assert space.contains({"c": True}) and space.contains({"c": "1"})
    assert space.key({"c": True}) != space.key({"c": 1})
    assert space.from_point([np.bool_(True)]) == {"c": True}
    assert space.from_point([1]) == {"c": 1} and space.from_point([1])["c"] is not True
