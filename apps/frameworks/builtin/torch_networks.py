"""The built-in torch networks (imported when a model is built, so discovery never imports torch)."""

from __future__ import annotations

from torch import nn


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
        self.rnn = nn.LSTM(
            n_features, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(self.dropout(out[:, -1]))
