import hmac

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken, hash_token


def authenticate_raw_token(raw: str) -> ApiToken:
    """Returns the live token for `raw` or raises AuthenticationFailed with the reason."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != ApiToken.PREFIX:
        raise exceptions.AuthenticationFailed("Malformed API token.")
    token = ApiToken.objects.select_related("user").filter(key_id=parts[1]).first()
    if token is None or not hmac.compare_digest(token.token_hash, hash_token(raw)):
        raise exceptions.AuthenticationFailed("Invalid API token.")
    if token.revoked:
        raise exceptions.AuthenticationFailed("API token revoked.")
    if token.is_expired:
        raise exceptions.AuthenticationFailed("API token expired.")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("User inactive.")
    now = timezone.now()
    # Write last-use at most once a minute: the prediction path should not write on every call.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer mlp_...` (or `Token mlp_...`)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        token = authenticate_raw_token(header[1].decode(errors="replace"))
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"
