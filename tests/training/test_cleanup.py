"""Folders that killed attempts leave behind are removed once old; a live run's and a recorded
artifact's folders never are."""

import io
import logging
import os
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.registry.storage import artifact_verify
from apps.training.choices import RunStatus
from apps.training.services.cleanup import training_orphans_remove
from apps.training.services.runs import run_status_transition
from apps.training.services.training_pipeline import training_run_execute

from .conftest import start_inline

HOURS = 3600
MAX_AGE = 6 * HOURS


@pytest.fixture
def media(settings, tmp_path):
    """A private artifact storage, so the sweep only ever sees this test's folders (ask for it before
    the dataset fixtures: the dataset's file is stored there too)."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    settings.TRAINING_ORPHAN_MAX_AGE_SECONDS = MAX_AGE
    return root


@pytest.fixture
def temp_dir(tmp_path):
    """Stands in for the system temp directory (shared with the rest of the host)."""
    folder = tmp_path / "systemp"
    folder.mkdir()
    return folder


def make_folder(path: Path, *, age_hours: float, files=("model/weights.bin", "MANIFEST.json")) -> Path:
    for rel in files:
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(b"x" * 100)
    age(path, hours=age_hours)
    return path


def age(path: Path, *, hours: float) -> None:
    """Sets the folder and everything in it to `hours` old, deepest first."""
    stamp = time.time() - hours * HOURS
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp))


def failed_run(experiment):
    run = start_inline(experiment)
    return run_status_transition(run_id=run.pk, to=RunStatus.FAILED, reason="killed in a test")


def sweep(temp_dir, **kwargs):
    return training_orphans_remove(temp_dir=temp_dir, **kwargs)


def test_old_orphaned_attempt_upload_and_temp_folders_are_removed_with_their_reason(
    media, price_experiment, temp_dir, caplog
):
    run = failed_run(price_experiment)
    attempt = make_folder(media / f"runs/{run.pk}/attempt-1-0badc0de", age_hours=7)
    ghost = make_folder(media / "runs/987654/attempt-2-feedface", age_hours=30)
    upload = make_folder(media / "tmp/20250101-00112233aabbccdd", age_hours=7)
    local = make_folder(temp_dir / f"run-{run.pk}-ab12cd_9", age_hours=7)
    verify = make_folder(temp_dir / "artifact-verify-zz99yy88", age_hours=7)

    with caplog.at_level(logging.INFO, logger="apps.training.services.cleanup"):
        result = sweep(temp_dir)

    assert not any(p.exists() for p in (attempt, ghost, upload, local, verify))
    assert not (media / f"runs/{run.pk}").exists(), "the emptied run folder goes too"
    removed = {r.path: r for r in result.removed}
    assert set(removed) == {
        f"runs/{run.pk}/attempt-1-0badc0de",
        "runs/987654/attempt-2-feedface",
        "tmp/20250101-00112233aabbccdd",
        str(local),
        str(verify),
    }
    assert f"run {run.pk} (failed)" in removed[f"runs/{run.pk}/attempt-1-0badc0de"].reason
    assert "run 987654 (deleted)" in removed["runs/987654/attempt-2-feedface"].reason
    assert removed[str(local)].kind == "temp-run" and removed[str(local)].bytes == 200
    assert 6.9 * HOURS < removed[str(local)].age_seconds < 7.1 * HOURS
    logged = caplog.text
    assert f"removed runs/{run.pk}/attempt-1-0badc0de (attempt, 7.0 h old" in logged
    assert "removed 5 folder(s)" in logged


def test_a_live_runs_folders_survive_however_old(media, price_experiment, temp_dir):
    queued = start_inline(price_experiment)
    running = run_status_transition(
        run_id=start_inline(price_experiment).pk,
        to=RunStatus.RUNNING,
        reason="attempt 1 in a test",
        fields={"attempts": 1},
    )
    kept = [
        make_folder(media / f"runs/{queued.pk}/attempt-1-aaaaaaaa", age_hours=48),
        make_folder(media / f"runs/{running.pk}/attempt-1-bbbbbbbb", age_hours=48),
        make_folder(temp_dir / f"run-{running.pk}-abcdefgh", age_hours=48),
    ]

    result = sweep(temp_dir)

    assert all(p.exists() for p in kept)
    assert result.removed == [] and result.kept_live == 3


def test_a_registered_versions_artifact_and_a_runs_recorded_artifact_survive(
    media, price_experiment, temp_dir, inline_runs
):
    registered = training_run_execute(run_id=start_inline(price_experiment).pk)
    trial = training_run_execute(run_id=start_inline(price_experiment, register_model=False).pk)
    version = registered.model_versions.get()
    assert not trial.model_versions.exists() and trial.artifact_uri, "recorded on the run only, as a tuning trial's"
    for uri in (version.artifact_uri, trial.artifact_uri):
        age(media / uri, hours=48)
    # A killed earlier attempt of the same finished run is an orphan all the same.
    earlier = make_folder(media / f"runs/{registered.pk}/attempt-0-0d0d0d0d", age_hours=48)

    result = sweep(temp_dir)

    assert [r.path for r in result.removed] == [f"runs/{registered.pk}/attempt-0-0d0d0d0d"]
    assert not earlier.exists() and result.kept_recorded == 2
    artifact_verify(uri=version.artifact_uri, sha256=version.artifact_sha256)
    artifact_verify(uri=trial.artifact_uri, sha256=trial.artifact_sha256)


def test_young_folders_and_old_folders_with_a_fresh_file_inside_survive(media, price_experiment, temp_dir):
    run = failed_run(price_experiment)
    young = make_folder(media / f"runs/{run.pk}/attempt-1-11111111", age_hours=5)
    writing = make_folder(temp_dir / f"run-{run.pk}-22222222", age_hours=30)
    (writing / "model" / "weights.bin").touch()  # still being written

    result = sweep(temp_dir)

    assert young.exists() and writing.exists()
    assert result.removed == [] and result.kept_young == 2


def test_the_sweep_touches_only_folders_it_knows_and_never_follows_a_symlink(
    media, price_experiment, temp_dir, tmp_path
):
    precious = make_folder(tmp_path / "precious", age_hours=48)
    (temp_dir / "run-1-linklink").symlink_to(precious, target_is_directory=True)
    strangers = [
        make_folder(temp_dir / "someone-elses-run-5", age_hours=48),
        make_folder(temp_dir / "run-abc-12345678", age_hours=48),
        make_folder(media / "datasets/prices", age_hours=48),
        make_folder(media / "runs/notanumber/attempt-1-00000000", age_hours=48),
        make_folder(media / "runs/42/not-an-attempt", age_hours=48),
    ]

    result = sweep(temp_dir)

    assert result.removed == []
    assert precious.exists() and (precious / "MANIFEST.json").exists()
    assert all(p.exists() for p in strangers)


def test_the_command_says_what_it_would_remove_and_then_removes_it(media, price_experiment, temp_dir, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(temp_dir))  # the command sweeps the system temp directory
    run = failed_run(price_experiment)
    orphan = make_folder(media / f"runs/{run.pk}/attempt-1-cafecafe", age_hours=7)

    out = io.StringIO()
    call_command("remove_orphaned_folders", "--dry-run", stdout=out)
    assert (
        f"would remove runs/{run.pk}/attempt-1-cafecafe (attempt, 7.0 h old, 200 B): run {run.pk} (failed)"
        in out.getvalue()
    )
    assert orphan.exists()

    out = io.StringIO()
    call_command("remove_orphaned_folders", "--max-age-seconds", str(8 * HOURS), stdout=out)
    assert orphan.exists() and "removed 0 folder(s)" in out.getvalue() and "1 younger than 28800 s" in out.getvalue()

    out = io.StringIO()
    call_command("remove_orphaned_folders", stdout=out)
    assert not orphan.exists() and f"removed runs/{run.pk}/attempt-1-cafecafe" in out.getvalue()


def test_the_command_refuses_a_max_age_that_is_not_positive(media):
    with pytest.raises(CommandError, match="--max-age-seconds: max_age_seconds must be positive"):
        call_command("remove_orphaned_folders", "--max-age-seconds", "0")


def test_the_sweep_is_an_hourly_beat_task_on_the_housekeeping_queue_after_migrate(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="training.remove_orphaned_folders")
    assert task.enabled and task.interval.every == 3600 and task.interval.period == "seconds"
    assert task.queue == "housekeeping"
