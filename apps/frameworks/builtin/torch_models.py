"""Built-in PyTorch model types: an MLP on feature rows and an LSTM over windows of one entity's rows."""

from __future__ import annotations

from ..model_types import ModelType
from ..neural import NEURAL_DESCRIPTIONS, neural_arch_params


class TorchMLP(ModelType):
    framework = "torch"
    name = "mlp"
    description = NEURAL_DESCRIPTIONS["mlp"]
    params = neural_arch_params(recurrent=False)

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        from .torch_networks import MLP

        return MLP(
            n_features,
            n_outputs,
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )


class TorchLSTM(ModelType):
    framework = "torch"
    name = "lstm"
    description = NEURAL_DESCRIPTIONS["lstm"]
    params = neural_arch_params(recurrent=True)
    uses_history = True

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        from .torch_networks import LSTMNet

        return LSTMNet(
            n_features,
            n_outputs,
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )
