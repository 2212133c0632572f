"""Keeps the two role groups' Django permissions in step with the portal's models after every migrate."""
from django.contrib.auth.models import Permission

PORTAL_APP_LABELS = ("core", "datasets", "training", "registry", "tuning", "deployments", "monitoring", "dashboard")
STAFF_EXTRA_APP_LABELS = ("django_celery_beat",)


def sync_role_permissions(sender=None, **kwargs):
    from .roles import ANALYST, ML_STAFF, ensure_role_groups

    groups = ensure_role_groups()
    portal = Permission.objects.filter(content_type__app_label__in=PORTAL_APP_LABELS + STAFF_EXTRA_APP_LABELS)
    groups[ML_STAFF].permissions.set(portal.exclude(content_type__app_label="core", content_type__model="apitoken"))
    groups[ANALYST].permissions.set(portal.filter(codename__startswith="view_").exclude(content_type__model="apitoken"))
