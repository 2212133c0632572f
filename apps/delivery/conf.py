"""Delivery and registry-retention settings with defaults: Django settings first (tests override
them), then an environment variable of the same name (worker processes share only the environment)."""

from django.conf import settings

from mlops_portal.env import env_int

_DEFAULTS = {
    # A QUEUED evaluation whose latest message is older than this and is neither on the broker nor
    # held by a worker has lost its message: the reaper sends it again.
    "DELIVERY_QUEUED_STALE_SECONDS": 600,
    # Messages sent for one evaluation (the first included) before a lost one ends FAILED.
    "DELIVERY_MAX_DISPATCHES": 3,
    # Versions never deployed and older than this many days are archived; 0 turns archiving off.
    "REGISTRY_ARCHIVE_AFTER_DAYS": 90,
}


def get(name: str) -> int:
    if hasattr(settings, name):
        return int(getattr(settings, name))
    return env_int(name, _DEFAULTS[name])
