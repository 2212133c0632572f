"""Loading a registered version for prediction: verify, then deserialise with safe formats only.

load_model_version(version) downloads the artifact, checks the manifest against the registry's
sha256 and every file against the manifest, refuses pickle files outright, and only then hands the
folder to the framework adapter (whose formats are safetensors / .keras with safe_mode / skops with an
allowlist). Deployments call it once per process and cache the LoadedModel.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from apps.frameworks import get_adapter
from apps.frameworks.fitting import UnsafeArtifact

from .storage import ArtifactIntegrityError, artifact_fetch

MODEL_DIR = "model"
PREPROCESSOR_FILE = "preprocessor.json"
SIGNATURE_FILE = "signature.json"
EXAMPLE_FILE = "input_example.json"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")

__all__ = ["ArtifactIntegrityError", "LoadedModel", "UnsafeArtifact", "load_model_version", "refuse_pickles"]


def _looks_like_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80) and the protocol number.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def refuse_pickles(directory: Path) -> None:
    """Raises UnsafeArtifact for any file that is, or is named like, a pickle."""
    for path in Path(directory).rglob("*"):
        if not path.is_file():
            continue
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            raise UnsafeArtifact(f"{path.name}: pickle-based files are never loaded")
        with open(path, "rb") as fh:
            if _looks_like_pickle(fh.read(2)):
                raise UnsafeArtifact(f"{path.name}: this file is a Python pickle; pickles are never loaded")


@dataclass
class LoadedModel:
    """A verified, deserialised model version ready to predict from raw rows."""

    version_id: int
    name: str
    version: int
    framework: str
    task: str
    signature: dict
    preprocessor: object
    trained: object
    classes: list | None = None
    artifact_sha256: str = ""
    manifest: dict = field(default_factory=dict)
    # Raw rows and the predictions the in-memory model made for them right after training.
    input_example: dict | None = None

    @property
    def history_rows(self) -> int:
        return int(self.signature.get("history_rows", 1))

    @property
    def window(self) -> int:
        return int(getattr(self.trained, "window", 1) or 1)

    def labels_of(self, indices: np.ndarray) -> list:
        """Class indices as the labels clients see (floats for regression)."""
        if self.task != "classification":
            return [float(v) for v in indices]
        if not self.classes:
            return [int(v) for v in indices]
        return [self.classes[int(i)] for i in indices]

    def features(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, list]:
        """Model input rows for raw `df`: (X, groups or None, row labels, one per prediction)."""
        if self.window <= 1:
            features, labels = self.preprocessor.serving_features(df)
            return _matrix(features, self.signature), None, list(labels)
        return self._recurrent_features(df)

    def _recurrent_features(self, df: pd.DataFrame):
        """The last `window` feature rows of each entity, each computed exactly as serving_features
        computes a newest row (so training and serving features stay identical): step k drops each
        entity's k newest rows and keeps the feature row of the newest one left."""
        from apps.datasets.preprocessing import InsufficientHistory, InvalidInput

        pre = self.preprocessor
        entity, time_column = pre.entity_column or None, pre.time_column or None
        for column in (entity, time_column):
            if column and column not in df.columns:
                raise InvalidInput(column, "missing column")
        if len(df) == 0:
            raise InvalidInput("rows", "no rows were sent")
        ordered = df
        if time_column:
            when = pd.to_datetime(df[time_column], errors="coerce", utc=True)
            keys = pd.DataFrame({"_e": df[entity].astype(str) if entity else "", "_t": when}, index=df.index)
            ordered = df.loc[keys.sort_values(["_e", "_t"], kind="stable").index]
        elif entity:
            ordered = df.loc[df[entity].astype(str).sort_values(kind="stable").index]
        key = ordered[entity].astype(str) if entity else pd.Series("", index=ordered.index)
        counts = key.value_counts()
        for name, got in counts.items():
            if got < self.history_rows:
                raise InsufficientHistory(self.history_rows, int(got), name if entity else None)
        from_end = key.groupby(key, sort=False).cumcount(ascending=False).to_numpy()
        steps, labels = [], None
        for k in range(self.window - 1, -1, -1):
            keep = from_end >= k
            features, step_labels = pre.serving_features(ordered[keep])
            matrix = _matrix(features, self.signature)
            if not pre.needs_history:
                # One feature row per input row (in input order): keep each entity's newest.
                last = from_end[keep] == k
                matrix = matrix[last]
                step_labels = [lbl for lbl, flag in zip(step_labels, last) if flag]
            if labels is None:
                labels = list(step_labels)
            steps.append(matrix)
        return np.stack(steps, axis=1), None, labels

    def predict_raw(self, df: pd.DataFrame) -> tuple[list, list]:
        """(predictions, row labels): class labels for classification, floats for regression.

        Raises the preprocessor's InvalidInput / InsufficientHistory for bad or too short input.
        """
        X, groups, labels = self.features(df)
        if len(X) == 0:
            return [], []
        indices = self.trained.predict(X, groups)
        return self.labels_of(np.asarray(indices)), labels

    def predict_proba_raw(self, df: pd.DataFrame) -> tuple[np.ndarray, list]:
        X, groups, labels = self.features(df)
        return self.trained.predict_proba(X, groups), labels


def _matrix(features, signature: dict) -> np.ndarray:
    names = signature.get("feature_names")
    if isinstance(features, pd.DataFrame):
        if names:
            features = features[names]
        return features.to_numpy(dtype=np.float32)
    return np.asarray(features, dtype=np.float32)


def load_model_version(version) -> LoadedModel:
    """Verifies and loads a ModelVersion (instance or id). Raises ArtifactIntegrityError for a
    missing or altered artifact and UnsafeArtifact for pickle-based content."""
    from apps.datasets.preprocessing import FittedPreprocessor

    from .models import ModelVersion

    if not isinstance(version, ModelVersion):
        version = ModelVersion.objects.select_related("registered_model").get(pk=version)
    with tempfile.TemporaryDirectory(prefix="model-version-") as tmp:
        manifest = artifact_fetch(uri=version.artifact_uri, sha256=version.artifact_sha256, dest=tmp)
        folder = Path(tmp)
        refuse_pickles(folder)
        stored_signature = json.loads((folder / SIGNATURE_FILE).read_text())
        if stored_signature != version.signature:
            raise ArtifactIntegrityError(
                f"{version}: the signature stored with the artifact differs from the registry's"
            )
        preprocessor = FittedPreprocessor.from_dict(json.loads((folder / PREPROCESSOR_FILE).read_text()))
        trained = get_adapter(version.framework).load(folder / MODEL_DIR, device="cpu")
        example_path = folder / EXAMPLE_FILE
        example = json.loads(example_path.read_text()) if example_path.is_file() else None
    return LoadedModel(
        version_id=version.pk,
        name=version.registered_model.name,
        version=version.version,
        framework=version.framework,
        task=version.task,
        signature=version.signature,
        preprocessor=preprocessor,
        trained=trained,
        classes=version.signature.get("classes"),
        artifact_sha256=version.artifact_sha256,
        manifest=manifest,
        input_example=example,
    )
