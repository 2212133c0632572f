"""Idempotent demo: users first, then each domain app's own `demo.seed` in data-flow order."""

from importlib import import_module

from django.core.management.base import BaseCommand

from apps.core.roles import ANALYST, ML_STAFF, PREDICTION_CLIENT
from apps.core.services import user_with_role_ensure

DEMO_USERS = (
    # username, password, role, superuser
    ("staff", "staff-demo-pass", ML_STAFF, False),
    ("analyst", "analyst-demo-pass", ANALYST, False),
    ("client", "client-demo-pass", PREDICTION_CLIENT, False),  # the product's service account
)
SEED_ORDER = ("datasets", "training", "tuning", "deployments", "monitoring", "delivery")


class Command(BaseCommand):
    help = "Creates (or refreshes) the demo users, data, models and the price-direction deployment."

    def add_arguments(self, parser):
        parser.add_argument("--users-only", action="store_true", help="only the demo users")

    def handle(self, *args, users_only=False, **options):
        for username, password, role, superuser in DEMO_USERS:
            user = user_with_role_ensure(username=username, password=password, role=role)
            if user.is_superuser != superuser:
                user.is_superuser = superuser
                user.save(update_fields=["is_superuser"])
            self.stdout.write(f"user {username!r} ({role}) ready")
        if users_only:
            return
        for app in SEED_ORDER:
            try:
                module = import_module(f"apps.{app}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"apps.{app}.demo":
                    raise
                continue
            module.seed(stdout=self.stdout)
