"""Artifact storage: a directory of model files committed atomically to storages["artifacts"].

Layout of a committed artifact at key prefix P:
    P/MANIFEST.json   {"format": 1, "files": {"<relative path>": {"sha256", "size"}}, ...}
    P/<relative path> for every file in the manifest

The files are first uploaded under tmp/<token>/, then committed to P: a local folder is renamed in
one step; on object stores (S3) the files are copied and the manifest is written last. An artifact
exists only once its manifest does, and the manifest's own sha256 is what the database records, so
a reader never trusts a partial or altered artifact.
"""

import hashlib
import json
import os
import posixpath
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, storages
from django.utils import timezone

MANIFEST = "MANIFEST.json"
TMP_PREFIX = "tmp"
CHUNK = 1024 * 1024


class ArtifactIntegrityError(Exception):
    """A missing artifact, or one whose manifest or files do not match the recorded sha256."""


@dataclass(frozen=True)
class CommittedArtifact:
    uri: str
    sha256: str
    manifest: dict


def artifact_storage():
    return storages["artifacts"]


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _safe_relative(name: str) -> str:
    """Refuses manifest entries that could escape the artifact folder (absolute, '..', backslashes)."""
    path = PurePosixPath(name)
    if not name or "\\" in name or path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
        raise ArtifactIntegrityError(f"unsafe file name in manifest: {name!r}")
    return str(path)


def build_manifest(local_dir: Path, *, extra: dict | None = None) -> tuple[dict, bytes]:
    files = {}
    for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST:
            continue
        sha, size = _sha256_file(path)
        files[_safe_relative(rel)] = {"sha256": sha, "size": size}
    if not files:
        raise ArtifactIntegrityError(f"nothing to store: {local_dir} holds no files")
    manifest = {"format": 1, "files": files, "created_at": timezone.now().isoformat(), **(extra or {})}
    raw = json.dumps(manifest, sort_keys=True, indent=1).encode()
    return manifest, raw


def _save_exact(storage, name: str, content) -> None:
    stored = storage.save(name, content)
    if stored != name:
        # A storage that renames on collision would break the manifest's paths: undo and refuse.
        storage.delete(stored)
        raise ArtifactIntegrityError(f"storage wrote {stored!r} instead of {name!r}")


def artifact_commit(*, local_dir: str | Path, prefix: str, extra: dict | None = None) -> CommittedArtifact:
    """Stores every file under `local_dir` as the artifact at key `prefix` (which must be new)."""
    storage = artifact_storage()
    prefix = _safe_relative(prefix.strip("/"))
    local_dir = Path(local_dir)
    manifest, raw = build_manifest(local_dir, extra=extra)
    sha = hashlib.sha256(raw).hexdigest()
    if storage.exists(posixpath.join(prefix, MANIFEST)):
        raise ArtifactIntegrityError(f"an artifact already exists at {prefix!r}")

    tmp = posixpath.join(TMP_PREFIX, f"{timezone.now():%Y%m%d}-{secrets.token_hex(8)}")
    try:
        for rel in manifest["files"]:
            with open(local_dir / rel, "rb") as fh:
                _save_exact(storage, posixpath.join(tmp, rel), File(fh, name=rel))
        _save_exact(storage, posixpath.join(tmp, MANIFEST), ContentFile(raw, name=MANIFEST))
        if isinstance(storage, FileSystemStorage):
            final = Path(storage.path(prefix))
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(storage.path(tmp), final)  # one rename: all or nothing
        else:
            try:
                for rel in manifest["files"]:
                    with storage.open(posixpath.join(tmp, rel), "rb") as fh:
                        _save_exact(storage, posixpath.join(prefix, rel), File(fh, name=rel))
                _save_exact(storage, posixpath.join(prefix, MANIFEST), ContentFile(raw, name=MANIFEST))
            except BaseException:
                # No manifest, so no reader sees the files copied so far; but every attempt commits
                # to a new prefix, so nothing would ever remove them from the bucket.
                _delete_tree(storage, prefix)
                raise
    finally:
        _delete_tree(storage, tmp)
    return CommittedArtifact(uri=prefix, sha256=sha, manifest=manifest)


def artifact_read_manifest(*, uri: str, sha256: str) -> dict:
    """The artifact's manifest after checking it against the recorded sha256."""
    storage = artifact_storage()
    name = posixpath.join(_safe_relative(uri), MANIFEST)
    if not storage.exists(name):
        raise ArtifactIntegrityError(f"artifact {uri!r} is missing (no {MANIFEST})")
    with storage.open(name, "rb") as fh:
        raw = fh.read()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(f"artifact {uri!r}: manifest sha256 is {actual}, the registry recorded {sha256}")
    manifest = json.loads(raw)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise ArtifactIntegrityError(f"artifact {uri!r}: manifest lists no files")
    for rel in manifest["files"]:
        _safe_relative(rel)
    return manifest


def artifact_fetch(*, uri: str, sha256: str, dest: str | Path) -> dict:
    """Downloads a committed artifact into `dest`, verifying the manifest and every file's sha256.

    Raises ArtifactIntegrityError naming the first file that is missing or differs.
    """
    storage = artifact_storage()
    manifest = artifact_read_manifest(uri=uri, sha256=sha256)
    dest = Path(dest)
    for rel, expected in manifest["files"].items():
        name = posixpath.join(uri, rel)
        if not storage.exists(name):
            raise ArtifactIntegrityError(f"artifact {uri!r}: file {rel!r} is missing")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with storage.open(name, "rb") as src, open(target, "wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected.get("sha256") or size != expected.get("size"):
            raise ArtifactIntegrityError(
                f"artifact {uri!r}: file {rel!r} has sha256 {digest.hexdigest()} ({size} bytes), "
                f"the manifest says {expected.get('sha256')} ({expected.get('size')} bytes)"
            )
    return manifest


def artifact_verify(*, uri: str, sha256: str) -> dict:
    """Full check of a committed artifact (every file hashed) without keeping the files."""
    with tempfile.TemporaryDirectory(prefix="artifact-verify-") as tmp:
        return artifact_fetch(uri=uri, sha256=sha256, dest=tmp)


def artifact_delete(*, uri: str) -> None:
    _delete_tree(artifact_storage(), _safe_relative(uri))


def _delete_tree(storage, prefix: str) -> None:
    if isinstance(storage, FileSystemStorage):
        shutil.rmtree(storage.path(prefix), ignore_errors=True)
        return
    try:
        dirs, files = storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        storage.delete(posixpath.join(prefix, name))
    for name in dirs:
        _delete_tree(storage, posixpath.join(prefix, name))
