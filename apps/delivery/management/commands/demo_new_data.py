from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.delivery.demo import DATASET, demo_new_data


class Command(BaseCommand):
    help = (
        "Adds the next days of the demo price series as a new dataset version; experiments that retrain on "
        "new data start, and the delivery policy evaluates and rolls out what they register."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", default=DATASET)
        parser.add_argument("--days", type=int, default=20, help="business days to add (default 20)")

    def handle(self, *args, dataset, days, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        user = get_user_model().objects.filter(username="staff").first()
        try:
            version, created = demo_new_data(dataset_name=dataset, days=days, user=user)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{version}: {version.rows} rows{' (new)' if created else ' (already there)'}")
