"""Runs INSIDE the benchmark's MLServer venv: lays out the portal's scikit-learn artifact as an
MLServer model repository.

    <mlserver venv>/bin/python bench/serving/mlserver_export.py SKLEARN_MODEL_DIR OUT_DIR WORKERS

The very estimator from the portal's skops file (loaded trusting the types skops reports for this
file, which this benchmark wrote a moment ago) is saved as MLServer's scikit-learn runtime expects
(`model.joblib`), with `parallel_workers` set to the portal's number of web workers so both servers
use the same number of processes. Adaptive batching stays at MLServer's default (off), as its
documentation ships it.
"""

import json
import sys
from pathlib import Path

import joblib
import skops.io as sio


def main(sklearn_dir: str, out_dir: str, workers: str) -> None:
    out = Path(out_dir)
    model = out / "bench-sklearn"
    model.mkdir(parents=True, exist_ok=True)
    skops_file = Path(sklearn_dir) / "model.skops"
    estimator = sio.load(skops_file, trusted=sio.get_untrusted_types(file=skops_file))
    joblib.dump(estimator, model / "model.joblib")
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "bench-sklearn",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    (out / "settings.json").write_text(
        json.dumps(
            {
                "parallel_workers": int(workers),
                "debug": False,
            }
        )
    )
    print("exported", out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
