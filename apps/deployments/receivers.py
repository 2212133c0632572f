"""A web process forgets the tokens it trusts when a token, a user or a user's groups change, so a
revocation saved on this process bites at once (other processes: within DEPLOYMENTS_AUTH_CACHE_MS)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from apps.core.models import ApiToken

from .auth import CachedApiTokenAuthentication

User = get_user_model()


@receiver(post_save, sender=ApiToken, dispatch_uid="deployments.forget_tokens_on_token_save")
@receiver(post_delete, sender=ApiToken, dispatch_uid="deployments.forget_tokens_on_token_delete")
@receiver(post_save, sender=User, dispatch_uid="deployments.forget_tokens_on_user_save")
@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="deployments.forget_tokens_on_groups_change")
def forget_trusted_tokens(sender, **kwargs):
    if sender is ApiToken and kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return  # the token's own last-use stamp, not a change of its rights
    CachedApiTokenAuthentication.forget_all()
