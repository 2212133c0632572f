"""The portal's own model types, declared through the same plugin interface as a team's own."""

from .boosting_models import LightGBMTrees, XGBoostTrees
from .keras_models import KerasLSTM, KerasMLP
from .sklearn_models import SklearnGradientBoosting, SklearnLinear
from .torch_models import TorchLSTM, TorchMLP

MODEL_TYPES = [
    TorchMLP,
    TorchLSTM,
    KerasMLP,
    KerasLSTM,
    SklearnLinear,
    SklearnGradientBoosting,
    XGBoostTrees,
    LightGBMTrees,
]
