"""Feature engineering and preprocessing: the contract the training, registry and deployment apps use.

- `prepare_training_data(*, df, dataset, spec, seed=0, fractions=(0.7, 0.15, 0.15)) -> PreparedData`
- `FittedPreprocessor` (to_dict / from_dict, transform, serving_features, history_rows, raw_columns)
- `validate_spec(spec, *, dataset=None, kinds=None)`; errors: SpecError, DataError, InvalidInput,
  InsufficientHistory (all ValueError subclasses).

See spec.py for the spec format and apps/CONTRACTS.md for the contract.
"""

from .errors import DataError, InsufficientHistory, InvalidInput, PreprocessingError, SpecError
from .fitted import FittedPreprocessor
from .frame import column_kind
from .prepare import PreparedData, prepare_training_data
from .spec import DatasetInfo, normalize_spec, spec_history_rows, target_name, validate_spec

__all__ = [
    "DataError",
    "DatasetInfo",
    "FittedPreprocessor",
    "InsufficientHistory",
    "InvalidInput",
    "PreparedData",
    "PreprocessingError",
    "SpecError",
    "column_kind",
    "normalize_spec",
    "prepare_training_data",
    "spec_history_rows",
    "target_name",
    "validate_spec",
]
