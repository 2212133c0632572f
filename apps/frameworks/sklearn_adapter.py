"""scikit-learn: trains any model type's estimator or Pipeline (built-in linear and boosting, or a plugin's).

The adapter's loop fits the estimator once and reports it as one epoch; a model type that wants
staged progress (the built-in gradient boosting) brings its own loop. Models are saved with skops and
loaded only when every non-default type is on the allowlist: SKOPS_ALLOWLIST plus the types the
model type declares in `trusted_types`. The same check runs at save time, so a model holding
anything only pickle could restore (a lambda, an undeclared class) fails its run instead of being
registered.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio
from threadpoolctl import threadpool_limits

from apps.frameworks.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import FrameworkAdapter, TrainedModel
from .fitting import ArtifactError, FitContext, UnsafeArtifact
from .devices import training_threads

MODEL_FILE = "model.skops"

# Types skops does not trust by default that the built-in estimators contain. Anything else in a file
# (a custom class, a function, os.system...) makes load refuse it unless its model type trusts it.
SKOPS_ALLOWLIST = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "numpy.dtype",
    }
)


class SklearnTrainedModel(TrainedModel):
    framework = "sklearn"

    def __init__(self, *, estimator, **kwargs):
        super().__init__(**kwargs)
        self.estimator = estimator

    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        return _outputs(self.estimator, inputs, self.task, self.n_classes)


def _outputs(estimator, inputs: np.ndarray, task: str, n_classes: int | None) -> np.ndarray:
    if task == REGRESSION:
        return np.asarray(estimator.predict(inputs), dtype=np.float32).reshape(-1)
    return _full_proba(estimator, inputs, n_classes)


def _full_proba(estimator, inputs: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba with one column per class, also for classes missing from the training split."""
    partial = estimator.predict_proba(inputs)
    proba = np.zeros((inputs.shape[0], n_classes), dtype=np.float32)
    proba[:, np.asarray(estimator.classes_).astype(np.int64)] = partial
    return proba


class SklearnAdapter(FrameworkAdapter):
    name = "sklearn"  # CPU only: no gpu_device

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        self.resolve_device(device)
        ctx = self.begin_fit(
            data=data, task=task, model_type=model_type, params=params, seed=seed, reporter=reporter, monitor=monitor
        )
        threads = training_threads()
        train = ctx.splits["train"]
        ctx.log(
            f"sklearn {model_type} ({task}): {len(train)} train rows, {len(ctx.splits['val'])} val rows, "
            f"{ctx.n_features} features, {threads} threads"
        )
        ctx.outputs_of = lambda estimator, inputs: _outputs(estimator, inputs, ctx.task, ctx.n_classes)
        plugin = self.model_type(model_type)
        with threadpool_limits(limits=threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimator = plugin.build(
                task=task,
                params=ctx.params,
                n_features=ctx.n_features,
                n_outputs=1 if task == REGRESSION else ctx.n_classes,
                window=1,
                seed=ctx.seed,
            )
            if plugin.own_loop:
                estimator = plugin.fit(estimator, ctx)
                if estimator is not None and not hasattr(estimator, "predict"):
                    raise TypeError(
                        f"{plugin!r}.fit() must return the fitted estimator (or None when stopped "
                        f"before the first epoch), got {type(estimator).__name__}"
                    )
            else:
                estimator = self._fit_once(ctx, estimator)
        for message in sorted({str(w.message) for w in caught}):
            ctx.log(f"scikit-learn: {message}", "WARNING")
        return SklearnTrainedModel(estimator=estimator, **ctx.model_kwargs(**ctx.own_loop_outcome()))

    @staticmethod
    def _fit_once(ctx: FitContext, estimator):
        if ctx.should_stop():
            return None
        train = ctx.splits["train"]
        estimator.fit(train.X, train.y)
        ctx.report_epoch(1, 1, estimator)
        return estimator

    def save(self, trained, directory):
        if not isinstance(trained, SklearnTrainedModel):
            raise TypeError(f"the sklearn adapter cannot save a {type(trained).__name__}")
        if trained.estimator is None:
            raise ValueError("the model was stopped before it was fitted; there is nothing to save")
        plugin = self.model_type(trained.model_type)
        try:
            dumped = sio.dumps(trained.estimator)
        except Exception as exc:  # skops raises assorted types for objects it cannot represent
            raise UnsafeArtifact(
                f"{plugin!r}: the fitted model cannot be saved with skops ({exc}); "
                "it holds something only pickle could store, and pickles are refused"
            ) from exc
        refused = _refused_types(sio.get_untrusted_types(data=dumped), plugin)
        if refused:
            raise UnsafeArtifact(
                f"{plugin!r}: the fitted model holds types that are not trusted: {', '.join(refused)}; "
                "a model type lists the types it needs in trusted_types (lambdas and local functions can never be loaded)"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(dumped)
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("sklearn", "skops"))

    def load(self, directory, *, device="cpu"):
        self.resolve_device(device)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        plugin = self.loaded_model_type(meta)
        estimator = load_skops(path, plugin)
        try:
            params = self.validate_params(meta["model_type"], meta["params"])
            expected = type(
                plugin.build(
                    task=meta["task"], params=params, n_features=int(meta["n_features"]), n_outputs=1, window=1, seed=0
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"meta.json does not describe a {meta.get('model_type')} model: {exc}") from exc
        if type(estimator) is not expected:
            raise UnsafeArtifact(
                f"{path.name} holds a {type(estimator).__name__}; a {meta.get('task')} "
                f"{meta.get('model_type')} model must be a {expected.__name__}"
            )
        return SklearnTrainedModel(estimator=estimator, **TrainedModel.common_kwargs(meta, "cpu"))


def _refused_types(untrusted, plugin) -> list[str]:
    return sorted(set(untrusted) - SKOPS_ALLOWLIST - set(getattr(plugin, "trusted_types", ())))


def load_skops(path: Path, plugin=None):
    """skops.io.load trusting exactly the reported untrusted types that are allowed for `plugin`."""
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnsafeArtifact(f"{path.name} is not a skops archive ({exc}); refusing to load it") from exc
    refused = _refused_types(untrusted, plugin)
    if refused:
        raise UnsafeArtifact(f"{path.name} contains types outside the allowlist: {', '.join(refused)}")
    return sio.load(path, trusted=list(untrusted))
