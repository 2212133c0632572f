"""MLflow pyfunc for the benchmark: the portal's torch MLP rebuilt from its meta.json and weights.

Mirrors apps.frameworks.builtin.torch_networks.MLP (Linear/ReLU/Dropout blocks, then a Linear
head; softmax then argmax for a classifier) so both servers compute the same function."""

import json
from pathlib import Path

import mlflow.pyfunc


class TorchMLP(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import safetensors.torch
        import torch
        from torch import nn

        folder = Path(context.artifacts["model_dir"])
        meta = json.loads((folder / "meta.json").read_text())
        params, n_features = meta["params"], meta["n_features"]
        n_outputs = meta.get("n_classes") or 1
        layers, width = [], n_features
        for _ in range(params["num_layers"]):
            layers += [nn.Linear(width, params["hidden_size"]), nn.ReLU(), nn.Dropout(params["dropout"])]
            width = params["hidden_size"]
        layers.append(nn.Linear(width, n_outputs))

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(*layers)

            def forward(self, x):
                return self.net(x)

        self.network = MLP()
        self.network.load_state_dict(safetensors.torch.load_file(str(folder / "model.safetensors")), strict=True)
        self.network.eval()
        self.torch = torch
        self.columns = meta.get("feature_names")

    def predict(self, context, model_input, params=None):
        import numpy as np

        frame = model_input[self.columns] if self.columns else model_input
        with self.torch.no_grad():
            out = self.network(self.torch.from_numpy(np.ascontiguousarray(frame.to_numpy(), dtype=np.float32)))
        return self.torch.softmax(out, dim=-1).argmax(dim=-1).numpy()
