"""The Bayesian strategy studies use, on the standard Branin benchmark (global minimum 0.397887).

Each seed is a sequential ask/tell loop through `suggest` with the records a study would store.
Seeds run in two processes: the work is pure numpy/scikit-learn, independent per seed.
"""

import math
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from apps.tuning.space import SearchSpace
from apps.tuning.strategies import TrialRecord, get_strategy

BRANIN_MIN = 0.397887
SPACE = [
    {"name": "x1", "type": "float", "low": -5.0, "high": 10.0},
    {"name": "x2", "type": "float", "low": 0.0, "high": 15.0},
]
SEEDS = range(int(os.environ.get("BRANIN_SEEDS", 10)))


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def best_so_far(strategy_name: str, seed: int, evaluations: int) -> list[float]:
    strategy = get_strategy(strategy_name, space=SearchSpace.from_spec(SPACE), seed=seed)
    records: list[TrialRecord] = []
    for _ in range(evaluations):
        params = strategy.suggest(records, 1)[0]
        records.append(TrialRecord(params, "complete", branin(params["x1"], params["x2"])))
    return np.minimum.accumulate([r.loss for r in records]).tolist()


def test_bayesian_search_finds_the_branin_minimum_and_beats_random_search():
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        bayes = list(pool.map(best_so_far, ["bayesian"] * len(SEEDS), SEEDS, [50] * len(SEEDS)))
    rand = [best_so_far("random", seed, 30) for seed in SEEDS]

    after_50 = [curve[49] for curve in bayes]
    bayes_30, random_30 = np.median([c[29] for c in bayes]), np.median([c[29] for c in rand])
    print(f"Branin best after 50 (bayesian): {[round(v, 4) for v in after_50]}")
    print(f"median best after 30: bayesian {bayes_30:.4f}, random {random_30:.4f}")
    assert all(v >= BRANIN_MIN - 1e-6 for v in after_50)
    assert sum(v <= 0.40 for v in after_50) >= 9
    assert bayes_30 < random_30
