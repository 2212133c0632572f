from django.core.management.base import BaseCommand, CommandError

from apps.training import conf
from apps.training.services.cleanup import training_orphans_remove


class Command(BaseCommand):
    help = (
        "Removes attempt, artifact-temp and system-temp folders that killed attempts left behind, when "
        "older than TRAINING_ORPHAN_MAX_AGE_SECONDS and owned by no live run and no recorded artifact."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
        parser.add_argument(
            "--max-age-seconds",
            type=float,
            help=f"remove folders older than this (default {conf.get('TRAINING_ORPHAN_MAX_AGE_SECONDS')})",
        )

    def handle(self, *args, dry_run, max_age_seconds, **options):
        try:
            sweep = training_orphans_remove(max_age_seconds=max_age_seconds, dry_run=dry_run)
        except ValueError as exc:
            raise CommandError(f"--max-age-seconds: {exc}") from exc
        verb = "would remove" if dry_run else "removed"
        for folder in sweep.removed:
            self.stdout.write(f"{verb} {folder.describe()}")
        for failure in sweep.failed:
            self.stderr.write(f"could not remove {failure}")
        for note in sweep.notes:
            self.stdout.write(note)
        total = sum(f.bytes for f in sweep.removed)
        self.stdout.write(
            f"{verb} {len(sweep.removed)} folder(s) ({total} bytes); kept {sweep.kept_live} of live runs, "
            f"{sweep.kept_recorded} recorded artifact(s), {sweep.kept_young} younger than "
            f"{sweep.max_age_seconds:g} s"
        )
        if sweep.failed:
            raise CommandError(f"{len(sweep.failed)} folder(s) could not be removed")
