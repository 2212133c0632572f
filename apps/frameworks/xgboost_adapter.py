"""XGBoost: trains any model type's native parameters (the built-in gradient boosting, or a plugin's
booster) with `xgboost.train` on a DMatrix.

The adapter's loop reports an epoch every `rounds_per_epoch` boosting rounds: the portal's train and
validation metrics (the booster's prediction cache makes each epoch cost only the new trees), early
stopping on the monitored metric with the portal's EarlyStopping, and cancellation or pruning asked
before every round. The returned booster is sliced to the best epoch's rounds, so the saved file
holds exactly the model that was scored best.

Regression trains on the raw target (reg:squarederror), so the booster predicts in target units on
its own; classification is binary:logistic, or multi:softprob over every declared class (a class
missing from the training split still gets its probability column). Probabilities come from the
margins (sigmoid / softmax), which also serves plugin objectives such as multi:softmax.

Models are saved as UBJSON (`model.ubj`), a data format that cannot carry code; loading runs
read_meta's sha256 and pickle checks first, then checks features and outputs against meta.json.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import xgboost as xgb
from scipy.special import expit, softmax

from apps.frameworks.metrics import REGRESSION

from .artifacts import library_versions, read_meta, write_meta
from .base import FrameworkAdapter, TrainedModel
from .fitting import ArtifactError, FitContext, UnsafeArtifact
from .boosting import BOOSTING_LOOP_PARAMS, BoostingEpochs, gpu_probe_data
from .devices import training_threads

MODEL_FILE = "model.ubj"


class XGBoostTrainedModel(TrainedModel):
    framework = "xgboost"

    def __init__(self, *, booster: xgb.Booster | None, **kwargs):
        super().__init__(**kwargs)
        self.booster = booster

    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        return _outputs(self.booster, inputs, self.task, self.n_classes, self.device)

    def describe(self) -> dict:
        rounds = self.booster.num_boosted_rounds() if self.booster is not None else 0
        return super().describe() | {"boosted_rounds": rounds}


def _predict(booster: xgb.Booster, data, *, margin: bool, device: str) -> np.ndarray:
    if isinstance(data, xgb.DMatrix):
        return booster.predict(data, output_margin=margin, validate_features=False)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if device != "cpu":
        # inplace_predict on host arrays with a CUDA booster falls back to a DMatrix with a warning.
        return booster.predict(xgb.DMatrix(data), output_margin=margin, validate_features=False)
    return booster.inplace_predict(data, predict_type="margin" if margin else "value", validate_features=False)


def _outputs(booster: xgb.Booster, data, task: str, n_classes: int | None, device: str) -> np.ndarray:
    """Regression values in target units (n,), or class probabilities (n, n_classes)."""
    if task == REGRESSION:
        out = np.asarray(_predict(booster, data, margin=False, device=device), dtype=np.float32)
        if out.ndim > 1 and out.shape[1] != 1:
            raise ValueError(f"the booster predicts {out.shape[1]} values per row; regression needs one")
        return out.reshape(-1)
    return margins_to_proba(_predict(booster, data, margin=True, device=device), n_classes)


def margins_to_proba(margin, n_classes: int) -> np.ndarray:
    margin = np.asarray(margin, dtype=np.float64)
    if margin.ndim == 1 or margin.shape[1] == 1:
        if n_classes != 2:
            raise ValueError(
                f"the booster has one output per row (a binary objective) for {n_classes} classes; "
                f"use a multi-class objective with num_class={n_classes}"
            )
        p = expit(margin.reshape(-1))
        return np.column_stack([1.0 - p, p]).astype(np.float32)
    if margin.shape[1] != n_classes:
        raise ValueError(f"the booster outputs {margin.shape[1]} classes; the data has {n_classes}")
    return softmax(margin, axis=1).astype(np.float32)


class _Epochs(BoostingEpochs, xgb.callback.TrainingCallback):
    """The adapter's loop inside xgboost.train: epochs, early stopping, cancellation."""

    def __init__(self, ctx: FitContext, matrices: dict[str, xgb.DMatrix]):
        BoostingEpochs.__init__(self, ctx)
        xgb.callback.TrainingCallback.__init__(self)
        self.matrices = matrices

    def before_iteration(self, model, epoch, evals_log) -> bool:
        return self.ctx.should_stop() is not None

    def after_iteration(self, model, epoch, evals_log) -> bool:
        done = epoch + 1
        if not self.is_epoch_end(done):
            return False
        ctx = self.ctx
        return self.end_epoch(
            done,
            {
                name: _outputs(model, matrix, ctx.task, ctx.n_classes, ctx.device)
                for name, matrix in self.matrices.items()
            },
        )


@functools.lru_cache(maxsize=1)
def _trains_on_cuda() -> bool:
    """One tiny round on "cuda": XGBoost silently falls back to the CPU without a visible GPU, so
    the booster's own device setting says whether the GPU was used."""
    if not xgb.build_info().get("USE_CUDA"):
        return False
    X, y = gpu_probe_data()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgb.train(
                {"device": "cuda", "tree_method": "hist", "nthread": 1, "verbosity": 0},
                xgb.DMatrix(X, label=y),
                num_boost_round=1,
            )
            device = json.loads(booster.save_config())["learner"]["generic_param"].get("device", "cpu")
    except (xgb.core.XGBoostError, KeyError, ValueError):
        return False
    return str(device).startswith("cuda")


class XGBoostAdapter(FrameworkAdapter):
    name = "xgboost"
    loop_params = BOOSTING_LOOP_PARAMS
    gpu_device = "cuda"
    gpu_requirement = "a CUDA device"

    def gpu_available(self) -> bool:
        return _trains_on_cuda()

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        xgb_device = self.resolve_device(device)
        ctx = self.begin_fit(
            data=data, task=task, model_type=model_type, params=params, seed=seed, reporter=reporter, monitor=monitor
        )
        ctx.device = xgb_device
        threads = training_threads()
        plugin = self.model_type(model_type)
        native = self.native_params(plugin, ctx, threads)
        ctx.log(
            f"xgboost {model_type} ({task}) on {xgb_device}: {len(ctx.splits['train'])} train rows, "
            f"{len(ctx.splits['val'])} val rows, {ctx.n_features} features, {threads} threads, "
            f"objective {native.get('objective')}"
        )
        ctx.outputs_of = lambda booster, inputs: _outputs(booster, inputs, ctx.task, ctx.n_classes, xgb_device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if plugin.own_loop:
                booster = plugin.fit(native, ctx)
                if booster is not None and not isinstance(booster, xgb.Booster):
                    raise TypeError(
                        f"{plugin!r}.fit() must return the trained xgboost.Booster, got {type(booster).__name__}"
                    )
                best_epoch = ctx.best_epoch()
            else:
                booster, best_epoch = self._train(ctx, native, threads)
        for message in sorted({str(w.message) for w in caught}):
            ctx.log(f"xgboost: {message}", "WARNING")
        if booster is not None:
            _place(booster, xgb_device, threads)
        return XGBoostTrainedModel(
            booster=booster,
            **ctx.model_kwargs(
                device=xgb_device,
                stopped_reason=ctx.stopped_reason,
                best_epoch=best_epoch,
                epochs_trained=len(ctx.history),
            ),
        )

    @staticmethod
    def native_params(plugin, ctx: FitContext, threads: int) -> dict:
        """The adapter's parameters, the model type's `build` dict over them, then device and threads
        (where and how wide a run trains is the worker's decision, not the model type's)."""
        base = {"tree_method": "hist", "seed": ctx.seed, "verbosity": 1}
        if ctx.task == REGRESSION:
            base["objective"] = "reg:squarederror"
        elif ctx.n_classes == 2:
            base["objective"] = "binary:logistic"
        else:
            base |= {"objective": "multi:softprob", "num_class": ctx.n_classes}
        if "learning_rate" in ctx.params:
            base["eta"] = ctx.params["learning_rate"]
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
                f"{plugin!r}.build() must return a dict of xgboost training parameters, got {type(built).__name__}"
            )
        return base | built | {"device": ctx.device, "nthread": threads}

    @staticmethod
    def _train(ctx: FitContext, native: dict, threads: int) -> tuple[xgb.Booster | None, int | None]:
        p = ctx.params
        train, val = ctx.splits["train"], ctx.splits["val"]
        dtrain = xgb.DMatrix(train.inputs(), label=train.targets(), nthread=threads)
        matrices = {"train": dtrain, "val": xgb.DMatrix(val.inputs(), nthread=threads)}
        loop = _Epochs(ctx, matrices)
        booster = xgb.train(native, dtrain, num_boost_round=p["n_estimators"], callbacks=[loop], verbose_eval=False)
        if ctx.stopped_reason:
            ctx.log(f"training stopped ({ctx.stopped_reason}) after {loop.epochs} complete epochs")
        if loop.epochs == 0:
            return None, None
        stopper = loop.stopper
        if loop.best_rounds < booster.num_boosted_rounds():
            try:
                booster = booster[: loop.best_rounds]
            except (xgb.core.XGBoostError, ValueError) as exc:  # e.g. gblinear cannot drop rounds
                ctx.log(
                    f"could not keep only the best epoch's {loop.best_rounds} rounds ({exc}); keeping all "
                    f"{booster.num_boosted_rounds()}",
                    "WARNING",
                )
                return booster, loop.epochs
            if stopper.best_epoch != loop.epochs:
                ctx.log(
                    f"restored the trees of epoch {stopper.best_epoch} ({stopper.monitor}="
                    f"{stopper.best_value:.6g}, {loop.best_rounds} rounds)"
                )
        return booster, stopper.best_epoch

    def save(self, trained, directory):
        if not isinstance(trained, XGBoostTrainedModel):
            raise TypeError(f"the xgboost adapter cannot save a {type(trained).__name__}")
        if trained.booster is None:
            raise ValueError("the model was stopped before its first epoch; there is nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        trained.booster.save_model(str(directory / MODEL_FILE))
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("xgboost"))

    def load(self, directory, *, device="cpu"):
        xgb_device = self.resolve_device(device)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        self.loaded_model_type(meta)
        try:
            kwargs = TrainedModel.common_kwargs(meta, xgb_device)
            n_features = int(meta["n_features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"meta.json does not describe an xgboost model: {exc}") from exc
        with open(path, "rb") as fh:
            if fh.read(1) != b"{":
                raise UnsafeArtifact(f"{path.name} is not an XGBoost UBJSON model; refusing to load it")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise UnsafeArtifact(
                f"{path.name} is not an XGBoost UBJSON model ({_first_line(exc)}); refusing to load it"
            ) from exc
        _place(booster, xgb_device, training_threads())
        if booster.num_features() != n_features:
            raise ArtifactError(
                f"{path.name} was trained on {booster.num_features()} features; meta.json says {n_features}"
            )
        if "boosted_rounds" in meta and booster.num_boosted_rounds() != meta["boosted_rounds"]:
            raise ArtifactError(
                f"{path.name} holds {booster.num_boosted_rounds()} boosting rounds; meta.json says "
                f"{meta['boosted_rounds']}"
            )
        probe = _predict(booster, np.zeros((1, n_features), np.float32), margin=True, device=xgb_device)
        check_output_width(path.name, probe, meta)
        return XGBoostTrainedModel(booster=booster, **kwargs)


def check_output_width(file_name: str, output, meta: dict) -> None:
    """ArtifactError unless one row's raw output has the width meta.json's task and classes need."""
    output = np.asarray(output)
    width = 1 if output.ndim == 1 else output.shape[1]
    if meta.get("task") == REGRESSION:
        expected = {1}
    else:
        n_classes = meta.get("n_classes")
        expected = {1, 2} if n_classes == 2 else {n_classes}
    if width not in expected:
        what = "one value" if meta.get("task") == REGRESSION else f"{meta.get('n_classes')} classes"
        raise ArtifactError(f"{file_name} outputs {width} values per row; meta.json describes {what}")


def _place(booster: xgb.Booster, device: str, threads: int) -> None:
    booster.set_param({"device": device, "nthread": threads})


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
