"""Artifacts are committed whole and verified on every load; altered or pickle-based ones are refused."""

import hashlib
import json
import pickle
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from apps.registry.loading import load_model_version
from apps.registry.storage import (
    MANIFEST,
    ArtifactIntegrityError,
    artifact_commit,
    artifact_fetch,
    artifact_read_manifest,
)
from apps.frameworks import UnsafeArtifact
from tests.brokers import free_port


def _folder(tmp_path: Path, name: str = "artifact") -> Path:
    folder = tmp_path / name
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "signature.json").write_text('{"a": 1}')
    return folder


@pytest.fixture
def local_artifacts(tmp_path, settings):
    """storages["artifacts"] in a folder of this test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }


def _rewrite(uri: str, name: str, content: bytes) -> None:
    storage = storages["artifacts"]
    storage.delete(f"{uri}/{name}")
    assert storage.save(f"{uri}/{name}", ContentFile(content)) == f"{uri}/{name}"


def _reseal(version, *, file: str, content: bytes):
    """What an attacker with write access to storage AND database could do: swap a file and fix
    every hash, so only the content checks remain."""
    manifest = artifact_read_manifest(uri=version.artifact_uri, sha256=version.artifact_sha256)
    _rewrite(version.artifact_uri, file, content)
    manifest["files"][file] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    raw = json.dumps(manifest, sort_keys=True, indent=1).encode()
    _rewrite(version.artifact_uri, MANIFEST, raw)
    type(version).objects.filter(pk=version.pk).update(artifact_sha256=hashlib.sha256(raw).hexdigest())
    version.refresh_from_db()


def test_a_committed_artifact_lists_every_file_with_its_hash(tmp_path, local_artifacts):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/1/a")
    assert set(committed.manifest["files"]) == {"model/weights.bin", "signature.json"}
    fetched = artifact_fetch(uri=committed.uri, sha256=committed.sha256, dest=tmp_path / "out")
    assert fetched == committed.manifest
    assert (tmp_path / "out" / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    # Nothing is left under the temporary prefix, and the key cannot be committed twice.
    assert storages["artifacts"].listdir("tmp")[0] == []
    with pytest.raises(ArtifactIntegrityError, match="already exists"):
        artifact_commit(local_dir=_folder(tmp_path, "again"), prefix="runs/1/a")


def test_a_changed_file_or_manifest_is_refused_naming_it(tmp_path, local_artifacts):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/2/a")
    _rewrite(committed.uri, "model/weights.bin", b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="model/weights.bin"):
        artifact_fetch(uri=committed.uri, sha256=committed.sha256, dest=tmp_path / "out")
    with pytest.raises(ArtifactIntegrityError, match="manifest sha256"):
        artifact_read_manifest(uri=committed.uri, sha256="0" * 64)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        artifact_read_manifest(uri="runs/none", sha256=committed.sha256)


def test_manifest_entries_that_escape_the_artifact_folder_are_refused(tmp_path, local_artifacts):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/3/a")
    manifest = dict(committed.manifest, files={"../../etc/passwd": {"sha256": "x", "size": 1}})
    raw = json.dumps(manifest).encode()
    _rewrite(committed.uri, MANIFEST, raw)
    with pytest.raises(ArtifactIntegrityError, match="unsafe file name"):
        artifact_read_manifest(uri=committed.uri, sha256=hashlib.sha256(raw).hexdigest())


def test_a_version_whose_artifact_was_tampered_with_is_not_loaded(version):
    model_file = next(
        f
        for f in artifact_read_manifest(uri=version.artifact_uri, sha256=version.artifact_sha256)["files"]
        if f.startswith("model/") and not f.endswith(".json")
    )
    _rewrite(version.artifact_uri, model_file, b"not the model that was trained")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_model_version(version)


def test_a_pickle_smuggled_into_an_artifact_is_refused_even_with_every_hash_fixed(version):
    model_file = next(
        f
        for f in artifact_read_manifest(uri=version.artifact_uri, sha256=version.artifact_sha256)["files"]
        if f.startswith("model/") and not f.endswith(".json")
    )
    _reseal(version, file=model_file, content=pickle.dumps({"looks": "harmless"}))
    with pytest.raises(UnsafeArtifact, match="pickle"):
        load_model_version(version)


def test_a_changed_signature_is_refused(version):
    _reseal(version, file="signature.json", content=json.dumps({**version.signature, "history_rows": 1}).encode())
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        load_model_version(version)


def test_a_loaded_version_predicts_labels_for_raw_rows_and_names_bad_input(version):
    from apps.datasets.preprocessing import InsufficientHistory, InvalidInput

    loaded = load_model_version(version)
    assert loaded.history_rows == version.signature["history_rows"] > 1
    rows = pd.DataFrame(loaded.input_example["rows"])
    predictions, labels = loaded.predict_raw(rows)
    assert predictions == loaded.input_example["predictions"] and set(predictions) <= {"up", "down"}
    with pytest.raises(InvalidInput) as missing:
        loaded.predict_raw(rows.drop(columns=["volume"]))
    assert missing.value.field == "volume"
    with pytest.raises(InsufficientHistory) as short:
        loaded.predict_raw(rows.groupby("ticker").tail(2))
    assert short.value.needed == loaded.history_rows


@pytest.fixture
def s3_artifacts(settings, monkeypatch):
    """storages["artifacts"] on an S3-compatible server (moto in server mode) for this test."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"mlops-{uuid.uuid4().hex[:12]}"  # moto keeps its buckets per process, not per server
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "location": "mlops",
                "default_acl": None,
                "file_overwrite": True,
                "querystring_auth": True,
            },
        },
    }
    yield SimpleNamespace(client=client, bucket=bucket)
    server.stop()


def test_the_s3_backend_commits_verifies_and_refuses_like_the_local_one(s3_artifacts, tmp_path):
    from storages.backends.s3 import S3Storage

    assert isinstance(storages["artifacts"], S3Storage)
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/9/a")
    keys = sorted(o["Key"] for o in s3_artifacts.client.list_objects_v2(Bucket=s3_artifacts.bucket)["Contents"])
    assert keys == ["mlops/runs/9/a/MANIFEST.json", "mlops/runs/9/a/model/weights.bin", "mlops/runs/9/a/signature.json"]
    assert artifact_fetch(uri=committed.uri, sha256=committed.sha256, dest=tmp_path / "out") == committed.manifest
    s3_artifacts.client.put_object(Bucket=s3_artifacts.bucket, Key="mlops/runs/9/a/model/weights.bin", Body=b"evil")
    with pytest.raises(ArtifactIntegrityError, match="model/weights.bin"):
        artifact_fetch(uri=committed.uri, sha256=committed.sha256, dest=tmp_path / "again")


def test_a_model_trained_onto_s3_loads_from_s3(s3_artifacts, trained_run):
    version = trained_run.model_versions.get()
    loaded = load_model_version(version)
    stored = s3_artifacts.client.list_objects_v2(Bucket=s3_artifacts.bucket, Prefix=f"mlops/{version.artifact_uri}/")[
        "Contents"
    ]
    assert len(stored) == len(loaded.manifest["files"]) + 1
    assert loaded.predict_raw(pd.DataFrame(loaded.input_example["rows"]))[0] == loaded.input_example["predictions"]
