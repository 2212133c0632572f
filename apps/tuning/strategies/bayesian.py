import warnings
from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
from threadpoolctl import threadpool_limits

from .base import SearchStrategy, StrategyOptionError, TrialRecord

ACQ_FUNCS = ("EI", "PI", "LCB")
INITIAL_GENERATORS = ("random", "lhs", "sobol", "halton", "hammersly")
LIARS = {"cl_min": np.min, "cl_mean": np.mean, "cl_max": np.max}


class BayesianStrategy(SearchStrategy):
    """Gaussian-process Bayesian optimisation with scikit-optimize's `Optimizer`.

    The optimizer is rebuilt from the stored trials on every call (one GP fit), so nothing lives in
    memory between trials. Up to `n_initial_points` trials come from the initial design; after that
    the GP is fitted to the finished trials and the acquisition function picks the next point.
    Pending trials enter the fit with a constant-liar value (`liar`) and a batch of n is asked with
    the same liar, so trials running in parallel are not suggested twice. Pruned trials count with
    their last intermediate loss, failed ones with the worst loss seen: the GP learns to avoid both.
    """

    name = "bayesian"
    default_options = {
        "acq_func": "EI",
        "xi": 0.01,
        "kappa": 1.96,
        "n_initial_points": 10,
        "initial_point_generator": "random",
        "acq_optimizer": "auto",
        "n_points": 1000,
        "n_restarts_optimizer": 3,
        "gp_restarts": 0,
        "liar": "cl_min",
    }
    minimums = {"n_initial_points": 1, "n_points": 10, "n_restarts_optimizer": 1, "gp_restarts": 0}

    @classmethod
    def validate_options(cls, options: Mapping) -> dict:
        merged = super().validate_options(options)
        choices = {
            "acq_func": ACQ_FUNCS,
            "initial_point_generator": INITIAL_GENERATORS,
            "acq_optimizer": ("auto", "lbfgs", "sampling"),
            "liar": tuple(LIARS),
        }
        for option, allowed in choices.items():
            if merged[option] not in allowed:
                raise StrategyOptionError(option, f"must be one of {', '.join(allowed)}, got {merged[option]!r}")
        for option in ("xi", "kappa"):
            value = merged[option]
            if not isinstance(value, Real) or isinstance(value, bool) or value < 0:
                raise StrategyOptionError(option, f"must be a non-negative number, got {value!r}")
        return merged

    def suggest(self, trials: Sequence[TrialRecord], n: int = 1) -> list[dict]:
        used = self._used_keys(trials)
        suggestions: list[dict] = []
        initial = self._initial_design_points(trials, used, n)
        suggestions.extend(initial)
        remaining = n - len(suggestions)
        if remaining <= 0:
            return suggestions
        observed_x, observed_y = self._observations(trials)
        if not observed_y:
            # Nothing finished yet (or every trial failed): the model has nothing to learn from.
            return suggestions + self._random_points(trials, used, remaining, offset=len(suggestions))
        pending = [t.params for t in trials if t.state == "pending"] + initial
        lie = float(LIARS[self.options["liar"]](observed_y))
        xs = observed_x + [self.space.to_point(p) for p in pending]
        ys = observed_y + [lie] * len(pending)
        optimizer = self._optimizer(len(trials))
        # A GP over a few hundred points gains nothing from BLAS threads, and workers run several
        # processes per core: more threads only oversubscribe (3x slower on a busy 2-core host).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # skopt warns when its optimum is a known point and it falls back to a random one; the
            # duplicate check below does the same, so the warning only adds noise to worker logs.
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            optimizer.tell(xs, ys)
            points = (
                [optimizer.ask()]
                if remaining == 1
                else optimizer.ask(n_points=remaining, strategy=self.options["liar"])
            )
        for point in points:
            params = self.space.from_point(point)
            key = self.space.key(params)
            if key in used:
                # The acquisition optimum sits on a known point (common in small discrete spaces).
                params = self._fresh_random(used, self._rng(3, len(trials) + len(suggestions)))
                if params is None:
                    continue
                key = self.space.key(params)
            used.add(key)
            suggestions.append(params)
        return suggestions

    def _initial_design_points(self, trials, used, n) -> list[dict]:
        """The next points of the initial design, for as many of n as the design still has room."""
        wanted = min(n, self.options["n_initial_points"] - len(trials))
        if wanted <= 0:
            return []
        if self.options["initial_point_generator"] == "random":
            return self._random_points(trials, used, wanted, offset=0)
        from skopt.utils import cook_initial_point_generator

        # The design is drawn from the study's seed alone, so it is the same on every call; trial k
        # takes its k-th point.
        generator = cook_initial_point_generator(self.options["initial_point_generator"])
        design = generator.generate(self.space.dimensions(), self.options["n_initial_points"], random_state=self.seed)
        points = []
        for row in design[len(trials) :]:
            params = self.space.from_point(row)
            key = self.space.key(params)
            if key not in used:
                used.add(key)
                points.append(params)
            if len(points) == wanted:
                break
        return points

    def _random_points(self, trials, used, count, *, offset) -> list[dict]:
        points = []
        for index in range(count):
            params = self._fresh_random(used, self._rng(2, len(trials) + offset + index))
            if params is None:
                break
            used.add(self.space.key(params))
            points.append(params)
        return points

    def _observations(self, trials) -> tuple[list, list]:
        finished = [t for t in trials if t.state in ("complete", "pruned") and t.loss is not None]
        xs = [self.space.to_point(t.params) for t in finished]
        ys = [float(t.loss) for t in finished]
        if ys:
            worst = max(ys)
            failed = [t for t in trials if t.state == "failed" or (t.state == "pruned" and t.loss is None)]
            xs += [self.space.to_point(t.params) for t in failed]
            ys += [worst] * len(failed)
        return xs, ys

    def _optimizer(self, history_length: int):
        from skopt import Optimizer
        from skopt.utils import cook_estimator

        dimensions = self.space.dimensions()
        # Seeded by (seed, history length): deterministic for a given history, different per step.
        random_state = np.random.RandomState(self._rng(4, history_length).integers(2**31 - 1))
        acq_optimizer = self.options["acq_optimizer"]
        if acq_optimizer == "auto":
            acq_optimizer = "lbfgs" if self.space.is_numeric else "sampling"
        estimator = cook_estimator(
            "GP", space=dimensions, random_state=random_state, n_restarts_optimizer=self.options["gp_restarts"]
        )
        return Optimizer(
            dimensions,
            base_estimator=estimator,
            n_initial_points=0,
            acq_func=self.options["acq_func"],
            acq_optimizer=acq_optimizer,
            acq_func_kwargs={"xi": self.options["xi"], "kappa": self.options["kappa"]},
            acq_optimizer_kwargs={
                "n_points": self.options["n_points"],
                "n_restarts_optimizer": self.options["n_restarts_optimizer"],
            },
            random_state=random_state,
        )
