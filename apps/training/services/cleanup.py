"""Removing the folders that killed attempts leave behind (beat's "remove orphaned attempt and temp
folders", hourly, on the housekeeping queue; `manage.py remove_orphaned_folders` by hand).

An attempt killed between writing and recording its model leaves, depending on where it died:

    MEDIA_ROOT/runs/<run>/attempt-<n>-<hex>/   a committed artifact that no run or version records
    MEDIA_ROOT/tmp/<date>-<hex>/               an artifact upload stopped before its one rename
    <system temp>/run-<run>-<random>/          the local folder the model was saved into first

and a web or worker process killed while verifying or loading an artifact leaves
`artifact-verify-*` or `model-version-*` in the system temp directory.

A folder is removed only when all of these hold:
- its newest entry is older than TRAINING_ORPHAN_MAX_AGE_SECONDS (a folder being written is young);
- it is not a folder of a live run (QUEUED or RUNNING: any of its attempts may still be writing);
- no TrainingRun and no ModelVersion records it, or a folder inside it, as their artifact.

Live runs are read before recorded artifacts, and a run leaves the live states in the transaction
that records its artifact (SUCCEEDED with artifact_uri), so every run's folder is seen as one or the
other, never as neither.

Only a local artifact storage (FileSystemStorage) is swept here; on an object store give the
`tmp/` prefix a lifecycle rule. The system temp directory is the one of the host the sweep runs on
(the housekeeping worker's); a training host elsewhere runs the management command from cron.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from apps.training import conf
from apps.training.choices import RUN_ACTIVE

logger = logging.getLogger(__name__)

RUNS_PREFIX = "runs"
# tempfile's names: the prefix and 8 characters of its alphabet.
_TEMP_RUN = re.compile(r"^run-(?P<run>\d+)-[a-z0-9_]{8}$")
_TEMP_OTHER = re.compile(r"^(?P<kind>artifact-verify|model-version)-[a-z0-9_]{8}$")


@dataclass(frozen=True)
class RemovedFolder:
    path: str
    kind: str  # "attempt" | "artifact-tmp" | "temp-run" | "temp-artifact-verify" | "temp-model-version"
    age_seconds: float
    bytes: int
    reason: str

    def describe(self) -> str:
        return f"{self.path} ({self.kind}, {self.age_seconds / 3600:.1f} h old, {_size(self.bytes)}): {self.reason}"


@dataclass
class OrphanSweep:
    """What one sweep removed (or, in a dry run, would remove) and why the rest stayed."""

    max_age_seconds: float
    dry_run: bool
    removed: list[RemovedFolder] = field(default_factory=list)
    kept_live: int = 0
    kept_recorded: int = 0
    kept_young: int = 0
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {
            "removed": len(self.removed),
            "bytes": sum(r.bytes for r in self.removed),
            "kept_live": self.kept_live,
            "kept_recorded": self.kept_recorded,
            "kept_young": self.kept_young,
            "failed": len(self.failed),
            "dry_run": self.dry_run,
        }


def training_orphans_remove(
    *, now=None, max_age_seconds: float | None = None, dry_run: bool = False, temp_dir: str | Path | None = None
) -> OrphanSweep:
    """Removes orphaned attempt, artifact-temp and system-temp folders (see the module docstring).

    `now` (an aware datetime) and `max_age_seconds` (default TRAINING_ORPHAN_MAX_AGE_SECONDS) decide
    what is old; `dry_run` only reports; `temp_dir` is the system temp directory to sweep (default
    tempfile.gettempdir(), the one the training code writes into). Each removal is logged at INFO
    with its reason, so the housekeeping worker's log says what went and why.
    """
    from django.core.files.storage import FileSystemStorage

    from apps.registry.models import ModelVersion
    from apps.registry.storage import TMP_PREFIX, artifact_storage
    from apps.training.models import TrainingRun

    max_age = float(max_age_seconds if max_age_seconds is not None else conf.get("TRAINING_ORPHAN_MAX_AGE_SECONDS"))
    if max_age <= 0:
        raise ValueError(f"max_age_seconds must be positive, got {max_age:g}")
    cutoff = (now or timezone.now()).timestamp() - max_age
    sweep = OrphanSweep(max_age_seconds=max_age, dry_run=dry_run)

    # Order matters (module docstring): live runs first, then what is recorded.
    live = set(TrainingRun.objects.filter(status__in=RUN_ACTIVE).values_list("pk", flat=True))
    recorded = {
        uri.strip("/") for uri in TrainingRun.objects.exclude(artifact_uri="").values_list("artifact_uri", flat=True)
    }
    recorded |= {uri.strip("/") for uri in ModelVersion.objects.values_list("artifact_uri", flat=True) if uri}
    holds_recorded = recorded | {parent for uri in recorded for parent in _parents(uri)}

    def consider(path: Path, *, key: str, kind: str, reason, run_id: int | None = None) -> None:
        if run_id is not None and run_id in live:
            sweep.kept_live += 1
            return
        if key in holds_recorded or any(key.startswith(uri + "/") for uri in recorded):
            sweep.kept_recorded += 1
            return
        newest, size = _newest_mtime_and_size(path)
        if newest > cutoff:
            sweep.kept_young += 1
            return
        entry = RemovedFolder(path=key, kind=kind, age_seconds=cutoff + max_age - newest, bytes=size, reason=reason())
        if not dry_run:
            try:
                shutil.rmtree(path)
            except OSError as exc:
                sweep.failed.append(f"{key}: {exc}")
                logger.warning("orphan sweep: could not remove %s: %s", key, exc)
                return
        sweep.removed.append(entry)
        logger.info("orphan sweep: %s %s", "would remove" if dry_run else "removed", entry.describe())

    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        root = Path(storage.location)
        runs_dir = root / RUNS_PREFIX
        for run_dir in _own_dirs(runs_dir):
            if not run_dir.name.isdigit():
                continue  # not a folder this code writes
            run_id = int(run_dir.name)
            for attempt in _own_dirs(run_dir):
                if not attempt.name.startswith("attempt-"):
                    continue
                consider(
                    attempt,
                    key=f"{RUNS_PREFIX}/{run_dir.name}/{attempt.name}",
                    kind="attempt",
                    run_id=run_id,
                    reason=lambda r=run_id: _attempt_reason(r),
                )
            if not dry_run and run_id not in live:
                _remove_if_empty(run_dir)
        for tmp in _own_dirs(root / TMP_PREFIX):
            consider(
                tmp,
                key=f"{TMP_PREFIX}/{tmp.name}",
                kind="artifact-tmp",
                reason=lambda: "an artifact upload that never reached its final rename",
            )
    else:
        sweep.notes.append(
            f"artifact storage {type(storage).__name__} is not a local folder: not swept "
            f"(give its {TMP_PREFIX}/ prefix a lifecycle rule)"
        )

    temp_root = Path(temp_dir or tempfile.gettempdir())
    for folder in _own_dirs(temp_root):
        if match := _TEMP_RUN.match(folder.name):
            run_id = int(match["run"])
            consider(
                folder,
                key=str(folder),
                kind="temp-run",
                run_id=run_id,
                reason=lambda r=run_id: f"the local save folder of {_run_state(r)}",
            )
        elif match := _TEMP_OTHER.match(folder.name):
            consider(
                folder,
                key=str(folder),
                kind=f"temp-{match['kind']}",
                reason=lambda: "left by a process killed while verifying or loading an artifact",
            )

    if sweep.removed or sweep.failed:
        logger.info(
            "orphan sweep: %s %d folder(s), %s; kept %d of live runs, %d recorded artifacts, %d younger "
            "than %.1f h; %d failed",
            "would remove" if dry_run else "removed",
            len(sweep.removed),
            _size(sum(r.bytes for r in sweep.removed)),
            sweep.kept_live,
            sweep.kept_recorded,
            sweep.kept_young,
            max_age / 3600,
            len(sweep.failed),
        )
    return sweep


def _attempt_reason(run_id: int) -> str:
    return f"{_run_state(run_id)}, and no run or model version records this folder"


def _run_state(run_id: int) -> str:
    from apps.training.models import TrainingRun

    status = TrainingRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return f"run {run_id} ({status})" if status else f"run {run_id} (deleted)"


def _parents(uri: str):
    parts = uri.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _own_dirs(parent: Path):
    """Real directories (never symlinks) directly in `parent` owned by this process's user: the
    system temp directory is shared with everything else on the host."""
    try:
        entries = list(os.scandir(parent))
    except (FileNotFoundError, NotADirectoryError):
        return []
    uid = os.getuid()
    found = []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            found.append(Path(entry.path))
    return sorted(found)


def _newest_mtime_and_size(path: Path) -> tuple[float, int]:
    """The newest modification time of the folder and everything in it (a file written a minute ago
    deep inside an old folder makes the folder young), and the bytes it holds."""
    top = path.lstat()
    newest, size = top.st_mtime, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            newest = max(newest, info.st_mtime)
            if stat.S_ISREG(info.st_mode):
                size += info.st_size
    return newest, size


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (a recorded or young attempt), or already gone


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
