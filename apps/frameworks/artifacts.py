"""meta.json and the checks every adapter runs before it parses a model file.

A saved model is a directory: one model file in a format that cannot run code when read
(safetensors, .keras with safe_mode, skops with an allowlist, XGBoost UBJSON, LightGBM text) and
meta.json describing it. The meta records the model file's sha256 so a swapped or truncated file is
caught before parsing, and the provenance of the model type's plugin code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
import zipfile
from pathlib import Path

from .base import TrainedModel
from .fitting import ArtifactError, UnsafeArtifact

META_FILE = "meta.json"
FORMAT_VERSION = 1
# Protocol 2+ pickles start with PROTO (0x80); torch.save writes a zip holding data.pkl.
_PICKLE_MAGIC = b"\x80"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions(*modules: str) -> dict:
    versions = {"python": platform.python_version()}
    for name in ("numpy", *modules):
        versions[name] = getattr(importlib.import_module(name), "__version__", "unknown")
    return versions


def write_meta(directory: Path, trained: TrainedModel, *, model_file: str, libraries: dict) -> None:
    from .discovery import catalog
    from .model_types import plugin_provenance

    model_type = catalog().get(trained.framework, trained.model_type)
    if model_type is None:
        raise ArtifactError(f"model type {trained.framework}/{trained.model_type} is not installed; cannot save it")
    meta = trained.describe() | {
        "format_version": FORMAT_VERSION,
        "model_file": model_file,
        "model_sha256": file_sha256(directory / model_file),
        "library_versions": libraries,
        # Which plugin code built it: loading refuses a model whose plugin is missing or changed.
        "plugin": plugin_provenance(model_type),
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_meta(directory: str | Path, *, framework: str, model_file: str) -> tuple[dict, Path]:
    """meta.json of a saved model plus the verified path of its model file."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{directory} has no {META_FILE}; it was not written by a framework adapter")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{meta_path} must hold a JSON object")
    if meta.get("framework") != framework:
        raise ArtifactError(f"{directory} holds a {meta.get('framework')!r} model, not a {framework} one")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{meta_path}: unsupported format_version {meta.get('format_version')!r}")
    # The adapter decides which file it reads; meta.json cannot point it at another one.
    if meta.get("model_file") != model_file:
        raise ArtifactError(f"{meta_path}: model_file must be {model_file!r}, got {meta.get('model_file')!r}")
    path = directory / model_file
    if not path.is_file() or path.is_symlink():
        raise ArtifactError(f"{path} is missing (or is a link)")
    refuse_pickle(path)
    if file_sha256(path) != meta.get("model_sha256"):
        raise ArtifactError(f"{path} does not match the sha256 recorded in {META_FILE}; refusing a modified file")
    return meta, path


def refuse_pickle(path: Path) -> None:
    """Raise UnsafeArtifact for pickle files and torch.save archives, whatever their name."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == _PICKLE_MAGIC:
        raise UnsafeArtifact(f"{path.name} is a Python pickle; pickles can run code when loaded and are refused")
    # Only a file that starts like a zip is opened as one: is_zipfile also accepts binary data that
    # merely contains an end-of-archive marker (a UBJSON model can, by chance).
    if head == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n.endswith((".pkl", ".pickle")) or n.endswith("/data.pkl")]
        if pickled:
            raise UnsafeArtifact(
                f"{path.name} is an archive with pickled members ({pickled[0]}), e.g. a torch.save file; refused"
            )
