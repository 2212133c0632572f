"""A model with its own training loop: linear SGD, one pass over shuffled mini-batches per epoch."""

import copy

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor

from apps.training.plugins import REGRESSION, EarlyStopping, ModelType, ParamSpec


class SGDLinear(ModelType):
    framework = "sklearn"
    name = "sgd_linear"
    description = "Linear model trained by SGD with partial_fit: epochs, live metrics and early stopping."
    params = {
        "epochs": ParamSpec("int", 20, 1, 500),
        "batch_size": ParamSpec("int", 64, 1, 8192),
        "alpha": ParamSpec("float", 1e-4, 1e-7, 1.0, log=True, help="L2 penalty"),
        "eta0": ParamSpec("float", 0.01, 1e-5, 1.0, log=True, help="initial learning rate"),
        "patience": ParamSpec("int", 4, 1, 100, help="epochs without improvement before stopping"),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        common = dict(alpha=params["alpha"], eta0=params["eta0"], learning_rate="invscaling", random_state=seed)
        if task == REGRESSION:
            return SGDRegressor(**common)
        return SGDClassifier(loss="log_loss", **common)

    def fit(self, model, ctx):
        p = ctx.params
        train = ctx.splits["train"]
        X, y = train.X, train.y
        # Classifiers must be told every class on the first partial_fit.
        extra = {} if ctx.task == REGRESSION else {"classes": np.arange(ctx.n_classes)}
        rng = np.random.default_rng(ctx.seed)
        stopper = EarlyStopping(ctx.monitor, p["patience"])
        best = None
        for epoch in range(1, p["epochs"] + 1):
            order = rng.permutation(len(X))
            for start in range(0, len(X), p["batch_size"]):
                if ctx.should_stop():
                    # The last reported epoch's best state; None when no epoch finished.
                    return best
                rows = order[start : start + p["batch_size"]]
                model.partial_fit(X[rows], y[rows], **extra)
            metrics = ctx.report_epoch(epoch, p["epochs"], model)
            if stopper.update(epoch, metrics):
                best = copy.deepcopy(model)
            elif stopper.exhausted:
                ctx.log(f"early stopping after epoch {epoch}; keeping epoch {stopper.best_epoch}")
                break
        return best if best is not None else model
