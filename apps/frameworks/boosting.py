"""What the XGBoost and LightGBM adapters share: the loop's parameters, its epoch bookkeeping and the
tiny data set each trains one round on to learn whether its GPU is usable."""

from __future__ import annotations

import math

import numpy as np

from .fitting import EarlyStopping, FitContext, ParamSpec

BOOSTING_LOOP_PARAMS = {
    "n_estimators": ParamSpec("int", 200, 1, 5000, help="boosting rounds at most; early stopping may end sooner"),
    "learning_rate": ParamSpec("float", 0.1, 1e-3, 1.0, log=True, help="shrinkage of each round's trees (eta)"),
    "patience": ParamSpec("int", 20, 1, 1000, help="epochs without a better validation score before stopping"),
    "rounds_per_epoch": ParamSpec("int", 1, 1, 500, help="boosting rounds per reported epoch"),
}


def gpu_probe_data() -> tuple[np.ndarray, np.ndarray]:
    """16 rows, 2 features, both classes: enough for one boosting round on any objective."""
    X = np.arange(32, dtype=np.float32).reshape(16, 2)
    return X, (X[:, 0] > 15).astype(np.float32)


class BoostingEpochs:
    """An epoch every `rounds_per_epoch` rounds: the portal's metrics, early stopping, best round."""

    def __init__(self, ctx: FitContext):
        self.ctx = ctx
        self.rounds, self.per_epoch = ctx.params["n_estimators"], ctx.params["rounds_per_epoch"]
        self.total = math.ceil(self.rounds / self.per_epoch)
        self.stopper = EarlyStopping(ctx.monitor, ctx.params["patience"])
        self.epochs = 0
        self.best_rounds = 0

    def is_epoch_end(self, done: int) -> bool:
        return done % self.per_epoch == 0 or done == self.rounds

    def end_epoch(self, done: int, outputs: dict[str, np.ndarray]) -> bool:
        """Report the epoch ending after `done` rounds; True when patience has run out.

        outputs: split name -> the model's output (target units or probabilities) on that split.
        """
        self.epochs += 1
        ctx, metrics = self.ctx, {}
        for name, output in outputs.items():
            metrics |= ctx.split_metrics(name, ctx.splits[name].targets(), output)
        ctx.record_epoch(self.epochs, self.total, metrics)
        if self.stopper.update(self.epochs, metrics):
            self.best_rounds = done
            return False
        if self.stopper.exhausted:
            ctx.log(
                f"early stopping after epoch {self.epochs}: {self.stopper.monitor} has not improved for "
                f"{self.stopper.patience} epochs"
            )
            return True
        return False
