"""PyTorch: trains any model type's nn.Module (built-in MLP and LSTM, or a plugin's own network).

Weights are saved with safetensors (a flat tensor format that cannot carry code); the network is
rebuilt by its model type from meta.json and the tensors loaded into it with strict key checking.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# cuBLAS needs this before the first CUDA call to give deterministic matmuls on GPU.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
from safetensors import SafetensorError  # noqa: E402
from torch import nn  # noqa: E402

from apps.frameworks.metrics import REGRESSION  # noqa: E402

from .artifacts import library_versions, read_meta, write_meta  # noqa: E402
from .base import FrameworkAdapter, TrainedModel  # noqa: E402
from .fitting import ArtifactError, FitContext, InvalidParameter, UnsafeArtifact  # noqa: E402
from .devices import training_threads  # noqa: E402
from .neural import NEURAL_LOOP_PARAMS, EpochProgress  # noqa: E402

MODEL_FILE = "model.safetensors"


@contextlib.contextmanager
def torch_settings(*, seed: int, threads: int):
    """Seeded, deterministic, thread-capped torch for one fit; the process settings come back after."""
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.manual_seed(seed)  # seeds CUDA too
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]


class TorchTrainedModel(TrainedModel):
    framework = "torch"

    def __init__(self, *, network: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.network = network

    @torch.no_grad()
    def _predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        self.network.eval()
        out = self.network(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device))
        return _to_output(out, self.task, self.target_mean, self.target_std)


def _contiguous(network: nn.Module) -> nn.Module:
    """safetensors needs contiguous tensors, which a plugin's transposed or sliced parameters may not be."""
    with torch.no_grad():
        for tensor in [*network.parameters(), *network.buffers()]:
            if not tensor.is_contiguous():
                tensor.data = tensor.data.contiguous()
    return network


def _to_output(out: torch.Tensor, task: str, mean: float, std: float) -> np.ndarray:
    if task == REGRESSION:
        return (out.squeeze(-1).double() * std + mean).float().cpu().numpy()
    return torch.softmax(out.float(), dim=-1).cpu().numpy()


class TorchAdapter(FrameworkAdapter):
    name = "torch"
    loop_params = NEURAL_LOOP_PARAMS
    gpu_device = "cuda"

    def gpu_available(self) -> bool:
        return torch.cuda.is_available()

    def fit(self, *, data, task, model_type, params=None, seed=0, device="cpu", reporter=None, monitor=None):
        torch_device = self.resolve_device(device)
        ctx = self.begin_fit(
            data=data, task=task, model_type=model_type, params=params, seed=seed, reporter=reporter, monitor=monitor
        )
        ctx.device = torch_device
        threads = training_threads()
        ctx.log(
            f"torch {model_type} ({task}) on {torch_device}: {len(ctx.splits['train'])} train examples, "
            f"{len(ctx.splits['val'])} val examples, {ctx.n_features} features, window {ctx.window}, "
            f"{threads} threads"
        )
        with torch_settings(seed=ctx.seed, threads=threads):
            plugin = self.model_type(model_type)
            network = self._network(
                plugin, ctx.task, ctx.params, ctx.n_features, ctx.n_classes, ctx.window, ctx.seed
            ).to(torch_device)
            trained = TorchTrainedModel(network=network, **ctx.model_kwargs(device=torch_device))
            if plugin.own_loop:
                return self._own_loop(plugin, ctx, trained)
            return self._train(ctx, trained)

    @staticmethod
    def _network(plugin, task, params, n_features, n_classes, window, seed) -> nn.Module:
        n_outputs = 1 if task == REGRESSION else int(n_classes)
        network = plugin.build(
            task=task, params=params, n_features=n_features, n_outputs=n_outputs, window=window, seed=seed
        )
        if not isinstance(network, nn.Module):
            raise TypeError(f"{plugin!r}.build() must return a torch.nn.Module, got {type(network).__name__}")
        return network

    def _own_loop(self, plugin, ctx: FitContext, trained: TorchTrainedModel) -> TorchTrainedModel:
        def outputs_of(network, inputs):
            trained.network, was_training = network, network.training
            outputs = trained.batched_outputs(inputs)
            network.train(was_training)
            return outputs

        ctx.outputs_of = outputs_of
        network = plugin.fit(trained.network, ctx)
        if not isinstance(network, nn.Module):
            raise TypeError(f"{plugin!r}.fit() must return the trained nn.Module, got {type(network).__name__}")
        trained.network = network.eval()
        vars(trained).update(ctx.own_loop_outcome())
        return trained

    def _train(self, ctx: FitContext, trained: TorchTrainedModel) -> TorchTrainedModel:
        p = ctx.params
        network, torch_device = trained.network, trained.device
        optimizer = torch.optim.Adam(network.parameters(), lr=p["learning_rate"], weight_decay=p["weight_decay"])
        loss_fn = nn.MSELoss() if ctx.task == REGRESSION else nn.CrossEntropyLoss()
        train = ctx.splits["train"]
        X = torch.from_numpy(train.X).to(torch_device)
        index = torch.from_numpy(train.index).to(torch_device)
        if ctx.task == REGRESSION:
            y = torch.from_numpy((train.y - ctx.target_mean) / ctx.target_std).float().to(torch_device)
        else:
            y = torch.from_numpy(train.y).to(torch_device)
        shuffler = torch.Generator().manual_seed(ctx.seed)

        progress = EpochProgress(
            ctx,
            outputs=lambda split: trained.batched_outputs(split.inputs()),
            snapshot=lambda: {k: v.detach().clone() for k, v in network.state_dict().items()},
            restore=network.load_state_dict,
        )
        reason = None
        for epoch in range(1, p["epochs"] + 1):
            network.train()
            order = torch.randperm(len(train), generator=shuffler).to(torch_device)
            for start in range(0, len(train), p["batch_size"]):
                reason = ctx.should_stop()
                if reason:
                    break
                rows = index[order[start : start + p["batch_size"]]]
                inputs = X[rows[:, 0]] if ctx.window == 1 else X[rows]
                optimizer.zero_grad(set_to_none=True)
                out = network(inputs)
                loss = loss_fn(out.squeeze(-1) if ctx.task == REGRESSION else out, y[rows[:, -1]])
                loss.backward()
                if p.get("grad_clip"):
                    nn.utils.clip_grad_norm_(network.parameters(), p["grad_clip"])
                optimizer.step()
            if reason or progress.end_epoch(epoch):
                break
        trained.epochs_trained = progress.epochs_done
        progress.finish(reason)
        network.eval()
        trained.stopped_reason = reason
        trained.best_epoch = progress.best_epoch
        return trained

    def save(self, trained, directory):
        if not isinstance(trained, TorchTrainedModel):
            raise TypeError(f"the torch adapter cannot save a {type(trained).__name__}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # save_model (not save_file) stores tensors that share memory (tied weights) once.
        safetensors.torch.save_model(
            _contiguous(trained.network), str(directory / MODEL_FILE), metadata={"format": "pt"}
        )
        write_meta(directory, trained, model_file=MODEL_FILE, libraries=library_versions("torch", "safetensors"))

    def load(self, directory, *, device="cpu"):
        torch_device = self.resolve_device(device)
        meta, path = read_meta(directory, framework=self.name, model_file=MODEL_FILE)
        try:
            plugin = self.loaded_model_type(meta)
            params = self.validate_params(meta["model_type"], meta["params"])
            network = self._network(
                plugin, meta["task"], params, int(meta["n_features"]), meta["n_classes"], int(meta["window"]), 0
            )
        except (InvalidParameter, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"meta.json does not describe a torch network: {exc}") from exc
        try:
            safetensors.torch.load_model(_contiguous(network), str(path), strict=True, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise UnsafeArtifact(f"{path.name} is not a safetensors file ({exc}); refusing to load it") from exc
        except RuntimeError as exc:  # missing, unexpected or mis-shaped tensors
            raise ArtifactError(f"{path.name} does not fit the network meta.json describes: {exc}") from exc
        network.to(torch_device).eval()
        return TorchTrainedModel(network=network, **TrainedModel.common_kwargs(meta, torch_device))
