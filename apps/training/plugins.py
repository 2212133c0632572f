"""What a model-type plugin imports: `from apps.training.plugins import ModelType, ParamSpec`.

See README "Bring your own model" and apps/frameworks/model_types.py for the contract.
"""

from apps.frameworks.fitting import EarlyStopping, FitContext, InvalidParameter, ParamSpec
from apps.frameworks.model_types import ModelType
from apps.frameworks.metrics import CLASSIFICATION, REGRESSION

__all__ = ["CLASSIFICATION", "EarlyStopping", "FitContext", "InvalidParameter", "ModelType", "ParamSpec", "REGRESSION"]
