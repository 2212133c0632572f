"""Example model-type plugins for the MLOps portal (README "Bring your own model").

The portal imports this module through the `mlops_portal.model_types` entry point and registers
every model type listed in MODEL_TYPES.
"""

from .sgd import SGDLinear
from .kernels import KernelLinear
from .tcn import TemporalConv

__version__ = "0.1.0"
MODEL_TYPES = [TemporalConv, KernelLinear, SGDLinear]
