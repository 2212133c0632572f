"""scikit-learn baselines: a regularised linear model and histogram gradient boosting.

Gradient boosting grows `stage_size` trees per reported "epoch" with warm_start, so progress,
cancellation and early stopping work the same way as for the neural networks. Models are saved
with skops and loaded only when every non-default type is on an explicit allowlist.
"""
from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from apps.training.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import EarlyStopping, FitContext, FrameworkAdapter, ParamSpec, TrainedModel, UnsafeArtifact
from .devices import resolve_device, training_threads

MODEL_FILE = "model.skops"

# Types skops does not trust by default that our own estimators contain. Anything else in a file
# (a custom class, a function, os.system...) makes load refuse it.
SKOPS_ALLOWLIST = frozenset({
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "numpy.dtype",
})

ESTIMATOR_TYPES = {
    ("linear", "regression"): Ridge,
    ("linear", "classification"): LogisticRegression,
    ("gradient_boosting", "regression"): HistGradientBoostingRegressor,
    ("gradient_boosting", "classification"): HistGradientBoostingClassifier,
}


class SklearnTrainedModel(TrainedModel):
    framework = "sklearn"

    def __init__(self, *, estimator, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator

    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        if self.task == REGRESSION:
            return self.estimator.predict(inputs).astype(np.float32)
        return _full_proba(self.estimator, inputs, self.n_classes)


def _full_proba(estimator, inputs: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba with one column per class, also for classes missing from the training split."""
    partial = estimator.predict_proba(inputs)
    proba = np.zeros((inputs.shape[0], n_classes), dtype=np.float32)
    proba[:, estimator.classes_.astype(np.int64)] = partial
    return proba


class SklearnAdapter(FrameworkAdapter):
    name = "sklearn"
    supports_gpu = False
    descriptions = {
        "linear": "Ridge regression, or logistic regression for classification (alpha = 1/C).",
        "gradient_boosting": "Histogram gradient boosting; stage_size trees per reported epoch.",
    }
    model_types = {
        "linear": {
            "alpha": ParamSpec("float", 1.0, 1e-6, 1e4, log=True, help="L2 regularisation strength"),
            "max_iter": ParamSpec("int", 500, 10, 10_000, help="solver iterations (classification)"),
        },
        "gradient_boosting": {
            "max_iter": ParamSpec("int", 100, 1, 2000, help="boosting iterations (trees per class)"),
            "learning_rate": ParamSpec("float", 0.1, 1e-3, 1.0, log=True),
            "max_leaf_nodes": ParamSpec("int", 31, 2, 256),
            "min_samples_leaf": ParamSpec("int", 20, 1, 1000),
            "l2_regularization": ParamSpec("float", 0.0, 0.0, 100.0),
            "stage_size": ParamSpec("int", 10, 1, 500, help="iterations per reported epoch"),
            "patience": ParamSpec("int", 3, 1, 1000, help="epochs without improvement before stopping"),
        },
    }

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        resolve_device(device, framework=self.name)
        ctx = self.begin_fit(data=data, task=task, model_type=model_type, params=params, seed=seed,
                             reporter=reporter, monitor=monitor)
        threads = training_threads()
        train = ctx.splits["train"]
        ctx.log(f"sklearn {model_type} ({task}): {len(train)} train rows, {len(ctx.splits['val'])} val rows, "
                f"{ctx.n_features} features, {threads} threads")
        with threadpool_limits(limits=threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if model_type == "linear":
                trained = self._fit_linear(ctx)
            else:
                trained = self._fit_boosting(ctx)
        for message in sorted({str(w.message) for w in caught}):
            ctx.log(f"scikit-learn: {message}", "WARNING")
        return trained

    def _trained(self, ctx: FitContext, estimator, *, stopped_reason=None, epochs_trained=0, best_epoch=None):
        return SklearnTrainedModel(
            estimator=estimator, model_type=ctx.model_type, task=ctx.task, params=ctx.params,
            n_features=ctx.n_features, window=1, classes=ctx.classes, n_classes=ctx.n_classes,
            feature_names=ctx.feature_names, target_mean=ctx.target_mean, target_std=ctx.target_std,
            stopped_reason=stopped_reason, best_epoch=best_epoch, epochs_trained=epochs_trained,
            history=ctx.history, monitor=ctx.monitor,
        )

    def _epoch_metrics(self, ctx: FitContext, estimator) -> dict:
        metrics = {}
        for name in ("train", "val"):
            split = ctx.splits[name]
            if ctx.task == REGRESSION:
                output = estimator.predict(split.X)
            else:
                output = _full_proba(estimator, split.X, ctx.n_classes)
            metrics |= ctx.split_metrics(name, split.y, output)
        return metrics

    def _fit_linear(self, ctx: FitContext) -> SklearnTrainedModel:
        reason = ctx.should_stop()
        if reason:
            return self._trained(ctx, None, stopped_reason=reason)
        p = ctx.params
        if ctx.task == REGRESSION:
            estimator = Ridge(alpha=p["alpha"])
        else:
            estimator = LogisticRegression(C=1.0 / p["alpha"], max_iter=p["max_iter"], random_state=ctx.seed)
        train = ctx.splits["train"]
        estimator.fit(train.X, train.y)
        metrics = self._epoch_metrics(ctx, estimator)
        ctx.record_epoch(1, 1, metrics)
        return self._trained(ctx, estimator, epochs_trained=1, best_epoch=1)

    def _boosting_estimator(self, ctx: FitContext, max_iter: int):
        p = ctx.params
        cls = HistGradientBoostingRegressor if ctx.task == REGRESSION else HistGradientBoostingClassifier
        return cls(
            max_iter=max_iter, learning_rate=p["learning_rate"], max_leaf_nodes=p["max_leaf_nodes"],
            min_samples_leaf=p["min_samples_leaf"], l2_regularization=p["l2_regularization"],
            early_stopping=False, warm_start=True, random_state=ctx.seed,
        )

    def _fit_boosting(self, ctx: FitContext) -> SklearnTrainedModel:
        p = ctx.params
        total = math.ceil(p["max_iter"] / p["stage_size"])
        train = ctx.splits["train"]
        stopper = EarlyStopping(ctx.monitor, p["patience"])
        estimator = self._boosting_estimator(ctx, p["stage_size"])
        best_iterations, epochs, reason = 0, 0, None
        for stage in range(1, total + 1):
            reason = ctx.should_stop()
            if reason:
                ctx.log(f"stopped ({reason}) before stage {stage} of {total}")
                break
            estimator.set_params(max_iter=min(stage * p["stage_size"], p["max_iter"]))
            estimator.fit(train.X, train.y)
            epochs = stage
            metrics = self._epoch_metrics(ctx, estimator)
            ctx.record_epoch(stage, total, metrics)
            if stopper.update(stage, metrics):
                best_iterations = estimator.n_iter_
            elif stopper.exhausted:
                ctx.log(f"early stopping after stage {stage}: {stopper.monitor} has not improved for "
                        f"{stopper.patience} stages")
                break
        if epochs == 0:
            return self._trained(ctx, None, stopped_reason=reason)
        if best_iterations < estimator.n_iter_:
            # warm_start cannot drop trees; a fresh fit to the best stage yields the same trees.
            ctx.log(f"restoring the best stage {stopper.best_epoch} ({stopper.monitor}={stopper.best_value:.6g}, "
                    f"{best_iterations} iterations)")
            estimator = self._boosting_estimator(ctx, best_iterations)
            estimator.fit(train.X, train.y)
        estimator.set_params(warm_start=False)
        return self._trained(ctx, estimator, stopped_reason=reason, epochs_trained=epochs,
                             best_epoch=stopper.best_epoch)

    def save(self, trained, directory):
        if not isinstance(trained, SklearnTrainedModel):
            raise TypeError(f"the sklearn adapter cannot save a {type(trained).__name__}")
        if trained.estimator is None:
            raise ValueError("the model was stopped before it was fitted; there is nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sio.dump(trained.estimator, directory / MODEL_FILE)
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("sklearn", "skops"))

    def load(self, directory, *, device="cpu"):
        resolve_device(device, framework=self.name)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        estimator = load_skops(path)
        expected = ESTIMATOR_TYPES.get((meta.get("model_type"), meta.get("task")))
        if expected is None or type(estimator) is not expected:
            raise UnsafeArtifact(
                f"{path.name} holds a {type(estimator).__name__}; a {meta.get('task')} "
                f"{meta.get('model_type')} model must be a {getattr(expected, '__name__', 'known estimator')}"
            )
        return SklearnTrainedModel(estimator=estimator, **TrainedModel.common_kwargs(meta, "cpu"))


def load_skops(path: Path):
    """skops.io.load trusting exactly the reported untrusted types that are on SKOPS_ALLOWLIST."""
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnsafeArtifact(f"{path.name} is not a skops archive ({exc}); refusing to load it") from exc
    refused = sorted(set(untrusted) - SKOPS_ALLOWLIST)
    if refused:
        raise UnsafeArtifact(f"{path.name} contains types outside the allowlist: {', '.join(refused)}")
    return sio.load(path, trusted=list(untrusted))
