"""One contract for every artifact storage backend: the local folder and S3 (moto's real server) pass
the same tests, so a backend-specific branch in apps/registry/storage.py cannot drift from the other."""

import hashlib
import posixpath

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils.module_loading import import_string

from apps.registry.storage import (
    MANIFEST,
    TMP_PREFIX,
    ArtifactIntegrityError,
    artifact_commit,
    artifact_delete,
    artifact_fetch,
    artifact_read_manifest,
    artifact_verify,
)

# The fixtures that point storages["artifacts"] at a local folder or at a moto S3 server.
from .test_storage_and_loading import local_artifacts, s3_artifacts  # noqa: F401

# The storage class -> the fixture that configures it. tests/core/test_choices_match_registries.py checks these
# are exactly the backends the settings can select, so a new backend cannot skip this suite.
CONTRACT_BACKENDS = {
    "django.core.files.storage.FileSystemStorage": "local_artifacts",
    "storages.backends.s3.S3Storage": "s3_artifacts",
}


@pytest.fixture(params=sorted(CONTRACT_BACKENDS), ids=lambda path: path.rsplit(".", 1)[-1])
def backend(request):
    request.getfixturevalue(CONTRACT_BACKENDS[request.param])
    storage = storages["artifacts"]
    assert type(storage) is import_string(request.param)
    return storage


def _folder(root, name="artifact"):
    """Three files: a nested binary one larger than the 1 MiB copy chunk, every byte value, and JSON."""
    folder = root / name
    (folder / "model" / "weights").mkdir(parents=True)
    (folder / "model" / "weights" / "big.bin").write_bytes(bytes(range(256)) * 4200)
    (folder / "model" / "all-bytes.bin").write_bytes(bytes(range(256)))
    (folder / "signature.json").write_text('{"inputs": ["f0", "f1"]}')
    return folder


def _files_under(storage, prefix):
    """Every file name below `prefix`, walking the storage's own listing (as an operator would see it)."""
    try:
        dirs, files = storage.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(
        [posixpath.join(prefix, f) for f in files]
        + [name for d in dirs for name in _files_under(storage, posixpath.join(prefix, d))]
    )


def test_a_committed_artifact_fetches_back_byte_for_byte_with_its_recorded_sha256(backend, tmp_path):
    source = _folder(tmp_path)
    committed = artifact_commit(local_dir=source, prefix="runs/1/a", extra={"run": 1})
    with backend.open(f"runs/1/a/{MANIFEST}", "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == committed.sha256
    assert committed.uri == "runs/1/a" and committed.manifest["run"] == 1
    assert artifact_fetch(uri=committed.uri, sha256=committed.sha256, dest=tmp_path / "out") == committed.manifest
    for rel, entry in committed.manifest["files"].items():
        data = (tmp_path / "out" / rel).read_bytes()
        assert data == (source / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert sorted(committed.manifest["files"]) == ["model/all-bytes.bin", "model/weights/big.bin", "signature.json"]
    assert _files_under(backend, "runs/1/a") == sorted(
        [f"runs/1/a/{MANIFEST}", *(f"runs/1/a/{rel}" for rel in committed.manifest["files"])]
    )
    assert artifact_verify(uri=committed.uri, sha256=committed.sha256) == committed.manifest
    assert _files_under(backend, TMP_PREFIX) == []


def test_a_wrong_sha256_is_refused_before_any_file_is_downloaded(backend, tmp_path):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/2/a")
    with pytest.raises(ArtifactIntegrityError, match=f"registry recorded {'0' * 64}"):
        artifact_fetch(uri=committed.uri, sha256="0" * 64, dest=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_artifact_or_a_missing_file_is_a_clear_error(backend, tmp_path):
    with pytest.raises(ArtifactIntegrityError, match=r"artifact 'runs/never' is missing \(no MANIFEST.json\)"):
        artifact_fetch(uri="runs/never", sha256="0" * 64, dest=tmp_path / "out")
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/3/a")
    backend.delete("runs/3/a/model/all-bytes.bin")
    with pytest.raises(ArtifactIntegrityError, match="file 'model/all-bytes.bin' is missing"):
        artifact_verify(uri=committed.uri, sha256=committed.sha256)


def test_a_changed_file_is_refused_naming_it_and_both_hashes(backend, tmp_path):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/4/a")
    name = "runs/4/a/model/weights/big.bin"
    backend.delete(name)
    backend.save(name, ContentFile(b"tampered"))
    expected = committed.manifest["files"]["model/weights/big.bin"]["sha256"]
    with pytest.raises(ArtifactIntegrityError, match="model/weights/big.bin") as caught:
        artifact_verify(uri=committed.uri, sha256=committed.sha256)
    assert hashlib.sha256(b"tampered").hexdigest() in str(caught.value) and expected in str(caught.value)


def test_a_prefix_is_committed_once_and_the_first_artifact_stays_intact(backend, tmp_path):
    first = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/5/a")
    other = _folder(tmp_path, "other")
    (other / "signature.json").write_text('{"inputs": []}')
    with pytest.raises(ArtifactIntegrityError, match="already exists at 'runs/5/a'"):
        artifact_commit(local_dir=other, prefix="runs/5/a")
    assert artifact_verify(uri=first.uri, sha256=first.sha256) == first.manifest
    assert _files_under(backend, TMP_PREFIX) == []


def test_an_escaping_prefix_or_an_empty_folder_is_refused_and_nothing_is_written(backend, tmp_path):
    source = _folder(tmp_path)
    for prefix in ("../escape", "/runs/../../x", "runs/a/../../.."):
        with pytest.raises(ArtifactIntegrityError, match="unsafe file name"):
            artifact_commit(local_dir=source, prefix=prefix)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactIntegrityError, match="holds no files"):
        artifact_commit(local_dir=tmp_path / "empty", prefix="runs/6/a")
    assert _files_under(backend, "") == []


def test_a_deleted_artifact_is_gone_whole(backend, tmp_path):
    committed = artifact_commit(local_dir=_folder(tmp_path), prefix="runs/7/a")
    artifact_delete(uri=committed.uri)
    assert _files_under(backend, "runs/7/a") == []
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        artifact_read_manifest(uri=committed.uri, sha256=committed.sha256)


def test_a_commit_that_fails_at_any_write_leaves_no_artifact_and_no_leftovers_and_can_be_retried(
    backend, tmp_path, monkeypatch
):
    """The storage refuses the n-th write, for every n the commit makes: the artifact must not exist
    (no manifest), nothing may stay behind (tmp/ or the prefix), and the same commit then succeeds."""
    source = _folder(tmp_path)
    real_save = backend.save
    writes = []

    def counting_save(name, content, *args, **kwargs):
        writes.append(name)
        return real_save(name, content, *args, **kwargs)

    monkeypatch.setattr(backend, "save", counting_save)
    artifact_commit(local_dir=source, prefix="runs/count/a")
    total = len(writes)
    assert total >= 4  # three files and the manifest, at least once each

    for failing in range(1, total + 1):
        calls = []

        def failing_save(name, content, *args, _failing=failing, **kwargs):
            calls.append(name)
            if len(calls) == _failing:
                raise OSError(f"storage refused write {_failing} ({name})")
            return real_save(name, content, *args, **kwargs)

        monkeypatch.setattr(backend, "save", failing_save)
        prefix = f"runs/fail-{failing}/a"
        with pytest.raises(OSError, match=f"refused write {failing}"):
            artifact_commit(local_dir=source, prefix=prefix)
        with pytest.raises(ArtifactIntegrityError, match="is missing"):
            artifact_read_manifest(uri=prefix, sha256="0" * 64)
        assert _files_under(backend, prefix) == [], f"write {failing} of {total} failed"
        assert _files_under(backend, TMP_PREFIX) == [], f"write {failing} of {total} failed"

        monkeypatch.setattr(backend, "save", real_save)
        retried = artifact_commit(local_dir=source, prefix=prefix)
        assert artifact_verify(uri=retried.uri, sha256=retried.sha256) == retried.manifest
