"""LightGBM: trains any model type's native parameters (the built-in gradient boosting, or a plugin's
booster) with `lightgbm.train` on a Dataset.

The adapter's loop reports an epoch every `rounds_per_epoch` boosting rounds: the portal's train and
validation metrics from the scores LightGBM keeps for its train and validation sets anyway (handed
to a metric function every round: no extra prediction, though LightGBM copies the scores to Python
each round), early stopping on the
monitored metric with the portal's EarlyStopping, and cancellation or pruning asked between rounds
(the callback ends training by raising EarlyStopException). The returned booster keeps only the best
epoch's rounds, so the saved file holds exactly the model that was scored best.

Regression trains on the raw target ("regression", L2), so the booster predicts in target units on
its own; classification is "binary", or "multiclass" over every declared class (a class missing
from the training split still gets its probability column). A plugin objective for classification
must predict probabilities (LightGBM's built-in ones all do).

Models are saved as LightGBM's text format (`model.txt`), which cannot carry code; loading runs
read_meta's sha256 and pickle checks first, then checks features and classes against meta.json.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np

from apps.frameworks.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import FrameworkAdapter, TrainedModel
from .fitting import ArtifactError, FitContext, UnsafeArtifact
from .boosting import BOOSTING_LOOP_PARAMS, BoostingEpochs, gpu_probe_data
from .devices import training_threads

MODEL_FILE = "model.txt"
TEXT_MODEL_HEAD = b"tree\n"


class LightGBMTrainedModel(TrainedModel):
    framework = "lightgbm"

    def __init__(self, *, booster: lgb.Booster | None, **kwargs):
        super().__init__(**kwargs)
        self.booster = booster

    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        return _outputs(self.booster, inputs, self.task, self.n_classes)

    def describe(self) -> dict:
        rounds = self.booster.current_iteration() if self.booster is not None else 0
        return super().describe() | {"boosted_rounds": rounds}


def _outputs(booster: lgb.Booster, inputs: np.ndarray, task: str, n_classes: int | None) -> np.ndarray:
    """Regression values in target units (n,), or class probabilities (n, n_classes)."""
    out = booster.predict(np.ascontiguousarray(inputs, dtype=np.float32), num_threads=training_threads())
    return as_outputs(out, task, n_classes)


def as_outputs(out, task: str, n_classes: int | None) -> np.ndarray:
    """LightGBM's (transformed) predictions in the portal's shape."""
    out = np.asarray(out, dtype=np.float64)
    if task == REGRESSION:
        if out.ndim > 1 and out.shape[1] != 1:
            raise ValueError(f"the booster predicts {out.shape[1]} values per row; regression needs one")
        return out.reshape(-1).astype(np.float32)
    if out.ndim == 1 or out.shape[1] == 1:
        if n_classes != 2:
            raise ValueError(
                f"the booster has one output per row (a binary objective) for {n_classes} classes; "
                f"use a multi-class objective with num_class={n_classes}"
            )
        p = out.reshape(-1)
        return np.column_stack([1.0 - p, p]).astype(np.float32)
    if out.shape[1] != n_classes:
        raise ValueError(f"the booster outputs {out.shape[1]} classes; the data has {n_classes}")
    # multiclassova's one-vs-rest probabilities need not add up to one.
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


class _Epochs(BoostingEpochs):
    """The adapter's loop inside lightgbm.train: `feval` receives LightGBM's current predictions for
    the train and validation sets every round; the after-round callback scores them at epoch
    boundaries and ends training (EarlyStopException) on early stopping, cancellation or pruning."""

    order = 100

    def __init__(self, ctx: FitContext, datasets: dict[str, lgb.Dataset]):
        super().__init__(ctx)
        self.datasets = datasets
        self.current: dict[str, np.ndarray] = {}

    def feval(self, preds, dataset):
        for name, candidate in self.datasets.items():
            if dataset is candidate:
                self.current[name] = preds
        return []

    def __call__(self, env) -> None:
        done = env.iteration - env.begin_iteration + 1
        ctx = self.ctx
        if self.is_epoch_end(done) and self.end_epoch(
            done, {name: as_outputs(self.current[name], ctx.task, ctx.n_classes) for name in self.datasets}
        ):
            raise lgb.callback.EarlyStopException(env.iteration, [])
        if done < self.rounds and ctx.should_stop() is not None:
            raise lgb.callback.EarlyStopException(env.iteration, [])


@functools.lru_cache(maxsize=1)
def _trains_on_gpu() -> bool:
    """One tiny round with device_type "gpu": the PyPI wheel has OpenCL support and raises
    LightGBMError ("No OpenCL device found") where there is no GPU."""
    X, y = gpu_probe_data()
    params = {
        "device_type": "gpu",
        "objective": "regression",
        "verbosity": -1,
        "num_threads": 1,
        "min_data_in_leaf": 1,
        "min_data_in_bin": 1,
    }
    try:
        lgb.train(params, lgb.Dataset(X, label=y, params={"verbosity": -1}), num_boost_round=1)
    except lgb.basic.LightGBMError:
        return False
    return True


class LightGBMAdapter(FrameworkAdapter):
    name = "lightgbm"
    loop_params = BOOSTING_LOOP_PARAMS
    gpu_device = "gpu"  # its device_type
    gpu_requirement = "an OpenCL GPU device"

    def gpu_available(self) -> bool:
        return _trains_on_gpu()

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        lgb_device = self.resolve_device(device)
        ctx = self.begin_fit(
            data=data, task=task, model_type=model_type, params=params, seed=seed, reporter=reporter, monitor=monitor
        )
        ctx.device = lgb_device
        threads = training_threads()
        plugin = self.model_type(model_type)
        native = self.native_params(plugin, ctx, threads)
        ctx.log(
            f"lightgbm {model_type} ({task}) on {lgb_device}: {len(ctx.splits['train'])} train rows, "
            f"{len(ctx.splits['val'])} val rows, {ctx.n_features} features, {threads} threads, "
            f"objective {native.get('objective')}"
        )
        ctx.outputs_of = lambda booster, inputs: _outputs(booster, inputs, ctx.task, ctx.n_classes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if plugin.own_loop:
                booster = plugin.fit(native, ctx)
                if booster is not None and not isinstance(booster, lgb.Booster):
                    raise TypeError(
                        f"{plugin!r}.fit() must return the trained lightgbm.Booster, got {type(booster).__name__}"
                    )
                best_epoch = ctx.best_epoch()
            else:
                booster, best_epoch = self._train(ctx, native)
        for message in sorted({str(w.message) for w in caught}):
            ctx.log(f"lightgbm: {message}", "WARNING")
        return LightGBMTrainedModel(
            booster=booster,
            **ctx.model_kwargs(
                device=lgb_device,
                stopped_reason=ctx.stopped_reason,
                best_epoch=best_epoch,
                epochs_trained=len(ctx.history),
            ),
        )

    @staticmethod
    def native_params(plugin, ctx: FitContext, threads: int) -> dict:
        """The adapter's parameters, the model type's `build` dict over them, then device and threads
        (where and how wide a run trains is the worker's decision, not the model type's)."""
        base = {
            # LightGBM's seeds are C ints (the portal's fit, but a plugin's own seed may not).
            "seed": ctx.seed % (2**31 - 1),
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "metric": "None",  # the portal scores epochs itself
        }
        if ctx.task == REGRESSION:
            base["objective"] = "regression"
        elif ctx.n_classes == 2:
            base["objective"] = "binary"
        else:
            base |= {"objective": "multiclass", "num_class": ctx.n_classes}
        if "learning_rate" in ctx.params:
            base["learning_rate"] = ctx.params["learning_rate"]
        built = plugin.build(
            task=ctx.task,
            params=ctx.params,
            n_features=ctx.n_features,
            n_outputs=1 if ctx.task == REGRESSION else ctx.n_classes,
            window=1,
            seed=ctx.seed,
        )
        if not isinstance(built, dict):
            raise TypeError(
                f"{plugin!r}.build() must return a dict of lightgbm training parameters, got {type(built).__name__}"
            )
        return base | built | {"device_type": ctx.device, "num_threads": threads}

    @staticmethod
    def _train(ctx: FitContext, native: dict) -> tuple[lgb.Booster | None, int | None]:
        p = ctx.params
        if ctx.should_stop():
            ctx.log(f"training stopped ({ctx.stopped_reason}) before the first round")
            return None, None
        train, val = ctx.splits["train"], ctx.splits["val"]
        train_set = lgb.Dataset(train.inputs(), label=train.targets(), free_raw_data=True)
        val_set = lgb.Dataset(val.inputs(), label=val.targets(), reference=train_set, free_raw_data=True)
        loop = _Epochs(ctx, {"train": train_set, "val": val_set})
        booster = lgb.train(
            native,
            train_set,
            num_boost_round=p["n_estimators"],
            valid_sets=[train_set, val_set],
            valid_names=["train", "val"],
            feval=loop.feval,
            callbacks=[loop],
            keep_training_booster=True,
        )
        if ctx.stopped_reason:
            ctx.log(f"training stopped ({ctx.stopped_reason}) after {loop.epochs} complete epochs")
        if loop.epochs == 0:
            return None, None
        stopper = loop.stopper
        if loop.best_rounds < booster.current_iteration() and stopper.best_epoch != loop.epochs:
            ctx.log(
                f"restored the trees of epoch {stopper.best_epoch} ({stopper.monitor}="
                f"{stopper.best_value:.6g}, {loop.best_rounds} rounds)"
            )
        # A booster rebuilt from the best rounds' text: what is saved is exactly what was scored, and
        # the training data is released with the training booster.
        best = lgb.Booster(model_str=booster.model_to_string(num_iteration=loop.best_rounds))
        booster.free_dataset()
        return best, stopper.best_epoch

    def save(self, trained, directory):
        if not isinstance(trained, LightGBMTrainedModel):
            raise TypeError(f"the lightgbm adapter cannot save a {type(trained).__name__}")
        if trained.booster is None:
            raise ValueError("the model was stopped before its first epoch; there is nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        trained.booster.save_model(str(directory / MODEL_FILE))
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("lightgbm"))

    def load(self, directory, *, device="cpu"):
        lgb_device = self.resolve_device(device)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        self.loaded_model_type(meta)
        try:
            kwargs = TrainedModel.common_kwargs(meta, lgb_device)
            n_features = int(meta["n_features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"meta.json does not describe a lightgbm model: {exc}") from exc
        with open(path, "rb") as fh:
            if fh.read(len(TEXT_MODEL_HEAD)) != TEXT_MODEL_HEAD:
                raise UnsafeArtifact(f"{path.name} is not a LightGBM text model; refusing to load it")
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise UnsafeArtifact(
                f"{path.name} is not a LightGBM text model ({str(exc)[:200]}); refusing to load it"
            ) from exc
        if booster.num_feature() != n_features:
            raise ArtifactError(
                f"{path.name} was trained on {booster.num_feature()} features; meta.json says {n_features}"
            )
        if "boosted_rounds" in meta and booster.current_iteration() != meta["boosted_rounds"]:
            raise ArtifactError(
                f"{path.name} holds {booster.current_iteration()} boosting rounds; meta.json says "
                f"{meta['boosted_rounds']}"
            )
        per_round = booster.num_model_per_iteration()
        n_classes = meta.get("n_classes")
        expected = {1} if meta.get("task") == REGRESSION else {1, 2} if n_classes == 2 else {n_classes}
        if per_round not in expected:
            what = "one value" if meta.get("task") == REGRESSION else f"{n_classes} classes"
            raise ArtifactError(
                f"{path.name} grows {per_round} trees per round (one per output); meta.json describes {what}"
            )
        return LightGBMTrainedModel(booster=booster, **kwargs)
