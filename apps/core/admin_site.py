"""The portal's admin site: branded, and its index ordered by the workflow a staff member follows
(data → training → tuning → registry → deployments → monitoring) instead of alphabetically, with
Celery's beat tables tucked under one "System" section.

Installed through `PortalAdminConfig` in INSTALLED_APPS (in place of "django.contrib.admin"), so
every `@admin.register` lands here without any app knowing about this class.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

# (section title, [(app_label, model object names in the order the workflow meets them)]).
# Models an app has that are not listed follow its listed ones alphabetically, so a new admin
# never disappears from the index; an app not listed at all goes to "Other" before System.
WORKFLOW_SECTIONS = [
    ("Data", [("datasets", ["Dataset", "DatasetVersion", "FeatureSpec"])]),
    ("Training", [("training", ["Experiment", "TrainingRun", "TrainingSchedule"])]),
    ("Tuning", [("tuning", ["TuningStudy", "Trial"])]),
    ("Registry", [("registry", ["RegisteredModel", "ModelVersion", "AliasEvent"])]),
    ("Deployments", [("deployments", ["Deployment", "Rollout", "DeploymentEvent"]), ("delivery", [])]),
    ("Monitoring", [("monitoring", ["PredictionLog", "Feedback"]), ("alerts", [])]),
    ("Access", [("auth", ["User", "Group"]), ("core", ["ApiToken"])]),
    (
        "System",
        [
            (
                "django_celery_beat",
                ["PeriodicTask", "CrontabSchedule", "IntervalSchedule", "ClockedSchedule", "SolarSchedule"],
            )
        ],
    ),
]


def _ordered_models(models: list[dict], order: list[str]) -> list[dict]:
    rank = {name: i for i, name in enumerate(order)}
    return sorted(models, key=lambda m: (rank.get(m["object_name"], len(rank)), m["name"]))


def workflow_sections(app_list: list[dict]) -> list[dict]:
    """Regroup Django's per-app list into the workflow sections; sections the user can see nothing
    of are left out, as Django leaves out apps."""
    by_label = {app["app_label"]: app for app in app_list}
    placed = {label for _, apps in WORKFLOW_SECTIONS for label, _ in apps}
    sections = []
    for title, apps in WORKFLOW_SECTIONS:
        if title == "System":
            for label in sorted(set(by_label) - placed):
                sections.append(by_label[label])
        members = [(by_label[label], order) for label, order in apps if label in by_label]
        if not members:
            continue
        first = members[0][0]
        sections.append(
            {
                **first,
                "name": title,
                # The caption links to the first app's page; the CSS class keeps the first app's label.
                "models": [m for app, order in members for m in _ordered_models(app["models"], order)],
            }
        )
    return sections


class PortalAdminSite(admin.AdminSite):
    site_header = "MLOps portal"
    site_title = "MLOps portal"
    index_title = "Staff cockpit"

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list  # one app's own page keeps that app's models as they are
        return workflow_sections(app_list)


class PortalAdminConfig(AdminConfig):
    default_site = "apps.core.admin_site.PortalAdminSite"
