"""Built-in scikit-learn model types: a regularised linear model and histogram gradient boosting.

Gradient boosting brings its own loop: it grows `stage_size` trees per reported epoch with
warm_start, so progress, cancellation and early stopping work as for the neural networks.
"""

from __future__ import annotations

import math

from apps.frameworks.metrics import REGRESSION

from ..fitting import EarlyStopping, ParamSpec
from ..model_types import ModelType


class SklearnLinear(ModelType):
    framework = "sklearn"
    name = "linear"
    description = "Ridge regression, or logistic regression for classification (alpha = 1/C)."
    params = {
        "alpha": ParamSpec("float", 1.0, 1e-6, 1e4, log=True, help="L2 regularisation strength"),
        "max_iter": ParamSpec("int", 500, 10, 10_000, help="solver iterations (classification)"),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        from sklearn.linear_model import LogisticRegression, Ridge

        if task == REGRESSION:
            return Ridge(alpha=params["alpha"])
        return LogisticRegression(C=1.0 / params["alpha"], max_iter=params["max_iter"], random_state=seed)


class SklearnGradientBoosting(ModelType):
    framework = "sklearn"
    name = "gradient_boosting"
    description = "Histogram gradient boosting; stage_size trees per reported epoch."
    params = {
        "max_iter": ParamSpec("int", 100, 1, 2000, help="boosting iterations (trees per class)"),
        "learning_rate": ParamSpec("float", 0.1, 1e-3, 1.0, log=True),
        "max_leaf_nodes": ParamSpec("int", 31, 2, 256),
        "min_samples_leaf": ParamSpec("int", 20, 1, 1000),
        "l2_regularization": ParamSpec("float", 0.0, 0.0, 100.0),
        "stage_size": ParamSpec("int", 10, 1, 500, help="iterations per reported epoch"),
        "patience": ParamSpec("int", 3, 1, 1000, help="epochs without improvement before stopping"),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed, max_iter=None):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingRegressor if task == REGRESSION else HistGradientBoostingClassifier
        return cls(
            max_iter=max_iter or params["max_iter"],
            learning_rate=params["learning_rate"],
            max_leaf_nodes=params["max_leaf_nodes"],
            min_samples_leaf=params["min_samples_leaf"],
            l2_regularization=params["l2_regularization"],
            early_stopping=False,
            warm_start=True,
            random_state=seed,
        )

    def fit(self, model, ctx):
        p = ctx.params
        total = math.ceil(p["max_iter"] / p["stage_size"])
        train = ctx.splits["train"]
        stopper = EarlyStopping(ctx.monitor, p["patience"])
        best_iterations, epochs = 0, 0
        for stage in range(1, total + 1):
            reason = ctx.should_stop()
            if reason:
                ctx.log(f"stopped ({reason}) before stage {stage} of {total}")
                break
            model.set_params(max_iter=min(stage * p["stage_size"], p["max_iter"]))
            model.fit(train.X, train.y)
            epochs = stage
            metrics = ctx.report_epoch(stage, total, model)
            if stopper.update(stage, metrics):
                best_iterations = model.n_iter_
            elif stopper.exhausted:
                ctx.log(
                    f"early stopping after stage {stage}: {stopper.monitor} has not improved for "
                    f"{stopper.patience} stages"
                )
                break
        if epochs == 0:
            return None
        if best_iterations < model.n_iter_:
            # warm_start cannot drop trees; a fresh fit to the best stage yields the same trees.
            ctx.log(
                f"restoring the best stage {stopper.best_epoch} ({stopper.monitor}={stopper.best_value:.6g}, "
                f"{best_iterations} iterations)"
            )
            model = self.build(
                task=ctx.task,
                params=p,
                n_features=ctx.n_features,
                n_outputs=0,
                window=1,
                seed=ctx.seed,
                max_iter=best_iterations,
            )
            model.fit(train.X, train.y)
        model.set_params(warm_start=False)
        return model
