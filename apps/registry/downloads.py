"""A committed artifact as one zip, streamed: the files are read, hashed and compressed chunk by chunk,
so a large model never sits whole in the web process's memory or on its disk.

The zip holds MANIFEST.json byte for byte as committed, so `sha256sum MANIFEST.json` in the unpacked
folder equals the version's recorded artifact_sha256, and each file's sha256 is listed in it.
"""

import hashlib
import io
import posixpath
import zipfile
from collections.abc import Iterator

from .storage import CHUNK, MANIFEST, ArtifactIntegrityError, artifact_read_manifest, artifact_storage


class _Drain(io.RawIOBase):
    """A write-only, unseekable sink that zipfile writes into and the generator empties after each chunk."""

    def __init__(self):
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def artifact_zip_stream(*, uri: str, sha256: str) -> Iterator[bytes]:
    """Checks the manifest against `sha256` before the first byte (raises ArtifactIntegrityError), then
    yields the zip. A file that turns out to differ from its manifest entry ends the stream with an
    error, so the client gets a broken download rather than a silently wrong model."""
    manifest = artifact_read_manifest(uri=uri, sha256=sha256)
    storage = artifact_storage()
    with storage.open(posixpath.join(uri, MANIFEST), "rb") as fh:
        raw_manifest = fh.read()

    def chunks() -> Iterator[bytes]:
        sink = _Drain()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, raw_manifest)
            for rel, expected in manifest["files"].items():
                digest = hashlib.sha256()
                with storage.open(posixpath.join(uri, rel), "rb") as src, archive.open(rel, "w") as dst:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        digest.update(chunk)
                        dst.write(chunk)
                        yield sink.take()
                if digest.hexdigest() != expected.get("sha256"):
                    raise ArtifactIntegrityError(f"artifact {uri!r}: file {rel!r} does not match its manifest")
        yield sink.take()

    return chunks()
