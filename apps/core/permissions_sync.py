"""Keeps the two role groups' Django permissions in step with the portal's models after every migrate."""

from django.contrib.auth.models import Permission

PORTAL_APP_LABELS = (
    "core",
    "datasets",
    "training",
    "registry",
    "tuning",
    "deployments",
    "monitoring",
    "dashboard",
    "delivery",
    "alerts",
)
# Celery beat's tables are visible to ML Staff but changed only through the portal's own schedules
# (TrainingSchedule keeps its PeriodicTask in step): a periodic task names any Celery task with any
# arguments, which is more power than a role below superuser should have.
STAFF_VIEW_ONLY_APP_LABELS = ("django_celery_beat",)


def sync_role_permissions(sender=None, **kwargs):
    from .roles import ANALYST, ML_STAFF, ensure_role_groups

    groups = ensure_role_groups()
    portal = Permission.objects.filter(content_type__app_label__in=PORTAL_APP_LABELS)
    beat_views = Permission.objects.filter(
        content_type__app_label__in=STAFF_VIEW_ONLY_APP_LABELS, codename__startswith="view_"
    )
    groups[ML_STAFF].permissions.set(
        portal.exclude(content_type__app_label="core", content_type__model="apitoken") | beat_views
    )
    groups[ANALYST].permissions.set(portal.filter(codename__startswith="view_").exclude(content_type__model="apitoken"))
