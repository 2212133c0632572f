"""What the torch and keras networks share: the parameter schema and the early-stopping epoch loop.

Both libraries offer the same two built-in model types with the same parameters, and the same loop
parameters for every model type, so a tuning study or a comparison between frameworks is about the
library, not about different knobs.
"""

from __future__ import annotations

import numpy as np

from .fitting import EarlyStopping, FitContext, ParamSpec

NEURAL_DESCRIPTIONS = {
    "mlp": "Feed-forward network on one feature row.",
    "lstm": "LSTM over the last `window` rows of the same entity; predicts the last row's target.",
}


def neural_arch_params(*, recurrent: bool) -> dict[str, ParamSpec]:
    """The built-in networks' own parameters (the loop's come from NEURAL_LOOP_PARAMS)."""
    specs = {
        "hidden_size": ParamSpec("int", 32, 2, 1024, help="units per hidden layer"),
        "num_layers": ParamSpec("int", 2 if not recurrent else 1, 1, 8, help="hidden (or LSTM) layers"),
        "dropout": ParamSpec("float", 0.1, 0.0, 0.9),
    }
    if recurrent:
        specs["window"] = ParamSpec("int", 10, 2, 512, help="consecutive rows of one entity per example")
        specs["grad_clip"] = ParamSpec("float", 1.0, 0.0, 100.0, help="max gradient norm; 0 turns it off")
    return specs


# The torch and keras training loops' parameters; every model type using those loops gets them.
# `grad_clip` is read when a model type declares it.
NEURAL_LOOP_PARAMS = {
    "learning_rate": ParamSpec("float", 1e-3, 1e-5, 1.0, log=True, help="Adam learning rate"),
    "weight_decay": ParamSpec("float", 0.0, 0.0, 0.1, help="L2 penalty on the weights"),
    "batch_size": ParamSpec("int", 64, 1, 8192),
    "epochs": ParamSpec("int", 20, 1, 1000),
    "patience": ParamSpec("int", 5, 1, 1000, help="epochs without improvement before stopping"),
}


class EpochProgress:
    """End-of-epoch bookkeeping for a network: metrics, reporting, early stopping, best weights.

    outputs(split) -> model output on a Split (target units or probabilities); snapshot() copies
    the weights, restore(snapshot) puts them back.
    """

    def __init__(self, ctx: FitContext, *, outputs, snapshot, restore):
        self.ctx = ctx
        self.total = ctx.params["epochs"]
        self.stopper = EarlyStopping(ctx.monitor, ctx.params["patience"])
        self._outputs, self._snapshot, self._restore = outputs, snapshot, restore
        self.best_state = None
        self.epochs_done = 0

    def end_epoch(self, epoch: int) -> bool:
        """Report epoch `epoch` (1-based); True when patience has run out and training should end."""
        outputs = {name: self._outputs(self.ctx.splits[name]) for name in ("train", "val")}
        self.epochs_done = epoch
        if not all(np.isfinite(out).all() for out in outputs.values()):
            if self.best_state is None:
                raise ValueError(
                    f"learning_rate: training diverged in epoch {epoch} (the network's predictions are not "
                    "finite); lower the learning rate or check the feature scaling"
                )
            self.ctx.log(f"training diverged in epoch {epoch} (predictions are not finite); stopping", "WARNING")
            return True
        metrics = {}
        for name, output in outputs.items():
            metrics |= self.ctx.split_metrics(name, self.ctx.splits[name].targets(), output)
        self.ctx.record_epoch(epoch, self.total, metrics)
        if self.stopper.update(epoch, metrics):
            self.best_state = self._snapshot()
            return False
        if self.stopper.exhausted:
            self.ctx.log(
                f"early stopping after epoch {epoch}: {self.stopper.monitor} has not improved "
                f"for {self.stopper.patience} epochs"
            )
            return True
        return False

    def finish(self, stopped_reason: str | None) -> None:
        if stopped_reason:
            self.ctx.log(f"training stopped ({stopped_reason}) after {self.epochs_done} complete epochs")
        if self.best_state is not None and self.stopper.best_epoch != self.epochs_done:
            self._restore(self.best_state)
            self.ctx.log(
                f"restored the weights of epoch {self.stopper.best_epoch} "
                f"({self.stopper.monitor}={self.stopper.best_value:.6g})"
            )
        elif stopped_reason and self.best_state is not None:
            # Stopped mid-epoch: the live weights have moved past the last reported epoch.
            self._restore(self.best_state)

    @property
    def best_epoch(self) -> int | None:
        return self.stopper.best_epoch
