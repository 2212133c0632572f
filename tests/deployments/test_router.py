"""Weighted splitting and sticky keys, on the router itself (no database)."""

import math
import random

from apps.deployments.router import Route, RoutingTable, bucket


def split_table(challenger_percent: float, generation: int = 1) -> RoutingTable:
    return RoutingTable(
        "price-direction", generation, [Route(1, 100 - challenger_percent), Route(2, challenger_percent)]
    )


def test_random_traffic_splits_within_four_standard_deviations_of_the_weights():
    table = split_table(10)
    n = 20_000
    to_challenger = sum(table.pick() == 2 for _ in range(n))
    expected, sd = n * 0.10, math.sqrt(n * 0.10 * 0.90)
    assert abs(to_challenger - expected) < 4 * sd


def test_keys_spread_over_versions_like_the_weights():
    table = split_table(50)
    keys = [f"customer-{i}" for i in range(20_000)]
    to_challenger = sum(table.pick(k) == 2 for k in keys)
    assert abs(to_challenger - 10_000) < 4 * math.sqrt(20_000 * 0.25)


def test_the_same_key_always_reaches_the_same_version_while_weights_stand():
    first = split_table(30)
    again = split_table(30, generation=2)  # rebuilt table, same weights
    for i in range(2_000):
        key = f"portfolio-{i}"
        choice = first.pick(key)
        assert all(first.pick(key) == choice for _ in range(3))
        assert again.pick(key) == choice


def test_a_growing_challenger_only_takes_keys_from_the_champion():
    at_10, at_50 = split_table(10), split_table(50)
    keys = [f"k{i}" for i in range(5_000)]
    for key in keys:
        if at_10.pick(key) == 2:
            assert at_50.pick(key) == 2, "a key on the challenger at 10% must stay there at 50%"


def test_buckets_are_uniform_on_the_unit_interval_and_salted_by_deployment():
    points = [bucket("a", str(i)) for i in range(10_000)]
    assert 0 <= min(points) and max(points) < 1
    assert abs(sum(points) / len(points) - 0.5) < 0.02
    assert sum(bucket("a", str(i)) == bucket("b", str(i)) for i in range(1000)) == 0


def test_shadow_versions_get_no_live_traffic():
    table = RoutingTable("d", 1, [Route(1, 100), Route(2, 0, shadow=True)])
    assert {table.pick(str(random.random())) for _ in range(500)} == {1}
    assert table.shadow_ids == (2,)
