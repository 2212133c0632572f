from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.monitoring.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recomputes the per-minute monitoring rollups from the raw prediction logs and feedback "
        "(backfills after an upgrade, repairs). Defaults to the raw retention window."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--deployment", action="append", default=[], help="deployment name (repeatable); default all"
        )
        parser.add_argument("--since", help="ISO datetime; default now - MONITORING_RAW_RETENTION_DAYS")
        parser.add_argument("--until", help="ISO datetime; default now")

    def handle(self, *args, deployment, since, until, **options):
        from apps.monitoring.models import PredictionLog

        # The logs' deployment table, through the foreign key: monitoring imports no app above it.
        Deployment = PredictionLog._meta.get_field("deployment").related_model
        now = timezone.now()
        start = (
            self._moment(since, "--since") if since else now - timedelta(days=settings.MONITORING_RAW_RETENTION_DAYS)
        )
        end = self._moment(until, "--until") if until else now
        if end <= start:
            raise CommandError("--until must be after --since")
        ids = None
        if deployment:
            found = dict(Deployment.objects.filter(name__in=deployment).values_list("name", "pk"))
            missing = sorted(set(deployment) - set(found))
            if missing:
                raise CommandError(f"No deployment named {', '.join(missing)}.")
            ids = list(found.values())
        written = rollups_rebuild(start=start, end=end, deployment_ids=ids)
        self.stdout.write(f"rebuilt {written} minute rollup(s) from {start.isoformat()} to {end.isoformat()}")

    @staticmethod
    def _moment(text, option):
        value = parse_datetime(text)
        if value is None:
            raise CommandError(f"{option}: {text!r} is not an ISO datetime")
        return value if timezone.is_aware(value) else timezone.make_aware(value)
