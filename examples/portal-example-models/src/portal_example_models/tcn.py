"""A temporal-convolution network over the history window: the portal's torch loop trains it."""

from torch import nn

from apps.training.plugins import ModelType, ParamSpec


class CausalConvNet(nn.Module):
    """Dilated causal 1-D convolutions over (batch, window, features); predicts from the last step."""

    def __init__(
        self, n_features: int, n_outputs: int, *, channels: int, kernel_size: int, levels: int, dropout: float
    ):
        super().__init__()
        blocks, width = [], n_features
        for level in range(levels):
            dilation = 2**level
            blocks += [
                # Left padding only: step t never sees a later step.
                nn.ConstantPad1d(((kernel_size - 1) * dilation, 0), 0.0),
                nn.Conv1d(width, channels, kernel_size, dilation=dilation),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            width = channels
        self.convs = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, n_outputs)

    def forward(self, x):
        hidden = self.convs(x.transpose(1, 2))  # (batch, channels, window)
        return self.head(hidden[:, :, -1])


class TemporalConv(ModelType):
    framework = "torch"
    name = "tcn"
    description = "Temporal convolution network: dilated causal convolutions over the last `window` rows."
    uses_history = True
    params = {
        "channels": ParamSpec("int", 16, 2, 256, help="convolution channels per level"),
        "kernel_size": ParamSpec("int", 3, 2, 7),
        "levels": ParamSpec("int", 2, 1, 6, help="dilated levels (receptive field grows 2x per level)"),
        "dropout": ParamSpec("float", 0.1, 0.0, 0.8),
        "window": ParamSpec("int", 8, 2, 256, help="consecutive rows of one entity per example"),
        # Overrides the torch loop's default of 20 epochs.
        "epochs": ParamSpec("int", 15, 1, 1000),
    }

    def build(self, *, task, params, n_features, n_outputs, window, seed):
        return CausalConvNet(
            n_features,
            n_outputs,
            channels=params["channels"],
            kernel_size=params["kernel_size"],
            levels=params["levels"],
            dropout=params["dropout"],
        )
