"""Peak memory of a hostile upload (a small Parquet file holding millions of rows) against a normal
small upload, and of previewing a version that large (stored before the limits, or with them raised).

    .venv/bin/python bench/bench_ingest_limits.py [--rows 20000000]

Every case runs `dataset_version_create` or `dataset_version_preview` in a fresh child process of its
own, so each peak RSS (VmHWM, reset after Django is set up where the kernel allows it) belongs to that
case alone. They share a private SQLite database and media folder made for this invocation and
removed afterwards; nothing else is needed (no PostgreSQL, no Redis, no worker).

Prints, per case: the outcome, RSS before the call, the peak during it, peak - before, seconds; then
the peak of the hostile upload and of the preview over the baseline's (target: about 1.0, i.e. a
refused bomb costs no more than a small accepted file, and a preview reads only the rows it shows).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Linux resets VmHWM to the current RSS when 5 is written to clear_refs (4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def child_setup():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_portal.settings")
    import django

    django.setup()
    # Load what the upload path imports lazily, so its cost is not counted as the case's.
    import pyarrow.parquet  # noqa: F401

    from apps.datasets import selectors, services  # noqa: F401
    from apps.datasets.preprocessing import frame  # noqa: F401


def child_prepare(work: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd
    from django.core.files import File

    from apps.datasets.services import dataset_create, dataset_version_create

    # Constant columns: the file stays a few hundred KB however many rows it holds.
    pd.DataFrame({"x": np.zeros(rows, dtype=np.int64), "y": np.ones(rows), "label": ["yes"] * rows}).to_parquet(
        work / "bomb.parquet", index=False
    )
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {"x": rng.integers(0, 100, 500), "y": rng.normal(size=500).round(4), "label": rng.choice(["yes", "no"], 500)}
    ).to_csv(work / "small.csv", index=False)
    dataset_create(name="bench-upload", task="classification", target_column="label")
    legacy = dataset_create(name="bench-legacy", task="classification", target_column="label")
    # The limits are raised for this process only (environment): the version stands for one stored
    # before they existed.
    with open(work / "bomb.parquet", "rb") as handle:
        dataset_version_create(dataset=legacy, file=File(handle), filename="bomb.parquet")


def child_case(work: Path, case: str) -> dict:
    from django.core.exceptions import ValidationError
    from django.core.files import File

    from apps.datasets.models import Dataset
    from apps.datasets.selectors import dataset_version_latest, dataset_version_preview
    from apps.datasets.services import dataset_version_create

    before = rss_kib("VmRSS")
    exact = reset_peak()
    started = time.perf_counter()
    if case == "preview":
        table = dataset_version_preview(
            version=dataset_version_latest(dataset=Dataset.objects.get(name="bench-legacy")), rows=20
        )
        outcome = f"previewed {len(table['rows'])} rows"
    else:
        name = "small.csv" if case == "baseline" else "bomb.parquet"
        try:
            with open(work / name, "rb") as handle:
                version, created = dataset_version_create(
                    dataset=Dataset.objects.get(name="bench-upload"), file=File(handle), filename=name
                )
            outcome = f"stored as v{version.version} ({version.rows:,} rows)" if created else "existing version"
        except ValidationError as exc:
            outcome = "refused: " + "; ".join(exc.message_dict.get("file", exc.messages))
    seconds = time.perf_counter() - started
    return {
        "case": case,
        "outcome": outcome,
        "before_mib": before / 1024,
        "peak_mib": rss_kib("VmHWM") / 1024,
        "seconds": seconds,
        "peak_reset": exact,
    }


def run_child(args: list[str], env: dict) -> dict | None:
    done = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stdout}\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows of the hostile Parquet file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_setup()
        work = Path(args.work)
        if args.child == "prepare":
            child_prepare(work, args.rows)
        else:
            print(json.dumps(child_case(work, args.child)), flush=True)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "MEDIA_ROOT": str(work / "media"),
        "PORTAL_MODE": "development",
        "PYTHONUNBUFFERED": "1",
    }
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        unlimited = {
            "DATASET_MAX_ROWS": str(10**12),
            "DATASET_MAX_CELLS": str(10**12),
            "DATASET_MAX_COLUMNS": str(10**6),
            "DATASET_MAX_DECOMPRESSED_BYTES": str(2**40),
        }
        run_child(["--child", "prepare", "--work", str(work), "--rows", str(args.rows)], env | unlimited)
        print(
            f"hostile file: {args.rows:,} rows in {(work / 'bomb.parquet').stat().st_size:,} bytes; "
            f"baseline: {(work / 'small.csv').stat().st_size:,} bytes of CSV (500 rows)"
        )
        results = {
            case: run_child(["--child", case, "--work", str(work)], env) for case in ("baseline", "bomb", "preview")
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'case':<10} {'before MiB':>10} {'peak MiB':>9} {'delta MiB':>10} {'seconds':>8}  outcome")
    for case, r in results.items():
        print(
            f"{case:<10} {r['before_mib']:>10.0f} {r['peak_mib']:>9.0f} {r['peak_mib'] - r['before_mib']:>10.0f} "
            f"{r['seconds']:>8.2f}  {r['outcome']}"
        )
    base = results["baseline"]
    for case in ("bomb", "preview"):
        r = results[case]
        print(
            f"{case} / baseline: peak {r['peak_mib'] / base['peak_mib']:.2f}x, "
            f"delta {(r['peak_mib'] - r['before_mib']) / max(1.0, base['peak_mib'] - base['before_mib']):.1f}x, "
            f"time {r['seconds'] / max(base['seconds'], 1e-3):.1f}x"
        )
    if not all(r["peak_reset"] for r in results.values()):
        print("note: the kernel refused to reset VmHWM; peaks include Django's own start-up")


if __name__ == "__main__":
    main()
