"""Reads the Vite build manifest (frontend2/dist/.vite/manifest.json) to find an entry's files."""

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict = {"mtime": None, "manifest": None}


class FrontendNotBuilt(Exception):
    """The manifest is missing or does not name the entry: the frontend was not built (make frontend)."""


@dataclass
class EntryAssets:
    script: str
    css: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)


def manifest_path() -> Path:
    return Path(settings.FRONTEND_DIST) / ".vite" / "manifest.json"


def load_manifest() -> dict:
    """The parsed manifest, re-read when the file changes (a rebuild during `make run`)."""
    path = manifest_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise FrontendNotBuilt(f"{path} is missing: build the frontend with `make frontend`.") from exc
    with _lock:
        if _cache["mtime"] != mtime:
            _cache["manifest"] = json.loads(path.read_text())
            _cache["mtime"] = mtime
        return _cache["manifest"]


def entry_assets(entry: str) -> EntryAssets:
    """The entry's script, every stylesheet it and its imported chunks need, and the chunks to preload."""
    manifest = load_manifest()
    if entry not in manifest:
        raise FrontendNotBuilt(f"the frontend build has no entry {entry!r}: rebuild with `make frontend`.")
    css: list[str] = []
    preload: list[str] = []
    seen: set[str] = set()

    def visit(key: str, is_entry: bool) -> None:
        if key in seen:
            return
        seen.add(key)
        chunk = manifest[key]
        for dep in chunk.get("imports", []):
            visit(dep, False)
        for sheet in chunk.get("css", []):
            if sheet not in css:
                css.append(sheet)
        if not is_entry:
            preload.append(chunk["file"])

    visit(entry, True)
    return EntryAssets(script=manifest[entry]["file"], css=css, preload=preload)
