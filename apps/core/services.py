from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .models import ApiToken, hash_token
from .roles import ANALYST, ML_STAFF, ensure_role_groups


@transaction.atomic
def api_token_create(*, user, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """Creates a token and returns it with the raw value, which is never stored."""
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    key_id, raw = ApiToken.new_raw_token()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_id=key_id,
        token_hash=hash_token(raw),
        expires_at=timezone.now() + timedelta(days=days) if days > 0 else None,
    )
    return token, raw


@transaction.atomic
def user_with_role_ensure(*, username: str, password: str, role: str | None, email: str = ""):
    """Creates or updates a user with exactly the given portal role (idempotent; used by seed_demo)."""
    groups = ensure_role_groups()
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    # Both roles log into admin: staff act there, analysts browse read-only.
    user.is_staff = role in (ML_STAFF, ANALYST)
    user.save()
    user.groups.remove(*groups.values())
    if role:
        user.groups.add(groups[role])
    return user
