"""Built-in PyTorch model types: an MLP on feature rows and an LSTM over windows of one entity's rows."""
from __future__ import annotations

from torch import nn

from ..model_types import ModelType
from ..neural import NEURAL_DESCRIPTIONS, neural_arch_params


class MLP(nn.Module):
    def __init__(self, n_features: int, n_outputs: int, *, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        layers, width = [], n_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class LSTMNet(nn.Module):
    def __init__(self, n_features: int, n_outputs: int, *, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(n_features, hidden_size, num_layers=num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(self.dropout(out[:, -1]))


class TorchMLP(ModelType):
    framework = "torch"
    name = "mlp"
    description = NEURAL_DESCRIPTIONS["mlp"]
    params = neural_arch_params(recurrent=False)

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        return MLP(n_features, n_outputs, hidden_size=params["hidden_size"], num_layers=params["num_layers"],
                   dropout=params["dropout"])


class TorchLSTM(ModelType):
    framework = "torch"
    name = "lstm"
    description = NEURAL_DESCRIPTIONS["lstm"]
    params = neural_arch_params(recurrent=True)
    uses_history = True

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        return LSTMNet(n_features, n_outputs, hidden_size=params["hidden_size"], num_layers=params["num_layers"],
                       dropout=params["dropout"])
