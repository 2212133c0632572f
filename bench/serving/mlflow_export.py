"""Runs INSIDE the benchmark's MLflow venv: packages the portal's own artifacts as MLflow models.

    <mlflow venv>/bin/python bench/serving/mlflow_export.py SKLEARN_MODEL_DIR TORCH_MODEL_DIR OUT_DIR

scikit-learn: the very estimator from the portal's skops file (loaded trusting the types skops
reports for this file, which this benchmark wrote a moment ago), saved with mlflow.sklearn.
PyTorch: a pyfunc (bench/serving/mlflow_torch_model.py) that rebuilds the same MLP from the
portal's meta.json and loads the same safetensors weights.
"""

import sys
from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import skops.io as sio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlflow_torch_model import TorchMLP  # noqa: E402


def main(sklearn_dir: str, torch_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    skops_file = Path(sklearn_dir) / "model.skops"
    estimator = sio.load(skops_file, trusted=sio.get_untrusted_types(file=skops_file))
    mlflow.sklearn.save_model(estimator, str(out / "sklearn"), serialization_format="cloudpickle")
    mlflow.pyfunc.save_model(
        str(out / "torch"),
        python_model=TorchMLP(),
        artifacts={"model_dir": torch_dir},
        code_paths=[str(Path(__file__).resolve().parent / "mlflow_torch_model.py")],
    )
    print("exported", out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
