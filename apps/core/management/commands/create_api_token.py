from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.core.services import api_token_create


class Command(BaseCommand):
    help = "Creates an API token for USERNAME and prints it (only the hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--days", type=int, default=None, help="lifetime in days; 0 = never expires")

    def handle(self, *args, username, name, days, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        _, raw = api_token_create(user=user, name=name, days=days)
        self.stdout.write(raw)
