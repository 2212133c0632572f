from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from apps.core.admin_readonly import ReadOnlyAdmin

from .models import CandidateEvaluation, DeliveryPolicy
from .selectors import delivery_timeline
from .services import delivery_policy_save, delivery_policy_validate


class DeliveryPolicyForm(forms.ModelForm):
    class Meta:
        model = DeliveryPolicy
        fields = [
            "deployment",
            "auto_challenge",
            "metric",
            "min_improvement",
            "min_evaluation_rows",
            "stages",
            "gates",
            "when_rollout_open",
        ]

    def _post_clean(self):
        super()._post_clean()
        if self.instance.deployment_id is None:
            return
        try:
            delivery_policy_validate(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)


def timeline_html(deployment) -> str:
    chains = delivery_timeline(deployment=deployment)
    if not chains:
        return format_html("<p>{}</p>", "No candidate has reached this deployment yet.")
    parts = []
    for chain in chains:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((s["at"] or "", s["step"], s["what"], s["actor"], s["reason"]) for s in chain["steps"]),
        )
        parts.append(
            format_html(
                "<h3>{} — {}</h3><table><tr><th>when</th><th>step</th><th>what</th><th>who</th><th>why</th></tr>{}</table>",
                chain["candidate"],
                chain["outcome"],
                rows,
            )
        )
    return format_html_join("", "{}", ((p,) for p in parts))


@admin.register(DeliveryPolicy)
class DeliveryPolicyAdmin(admin.ModelAdmin):
    form = DeliveryPolicyForm
    list_display = (
        "deployment",
        "registered_model",
        "auto_challenge",
        "metric",
        "min_improvement",
        "when_rollout_open",
        "updated_by",
        "updated_at",
    )
    list_filter = ("auto_challenge", "when_rollout_open")
    readonly_fields = ("registered_model", "updated_by", "created_at", "updated_at", "timeline")

    def get_readonly_fields(self, request, obj=None):
        # The deployment of an existing policy is fixed: a policy belongs to one deployment.
        return ("deployment", *self.readonly_fields) if obj is not None else self.readonly_fields

    @admin.display(description="Delivery timeline")
    def timeline(self, obj):
        return timeline_html(obj.deployment) if obj and obj.pk else "-"

    def save_model(self, request, obj, form, change):
        delivery_policy_save(policy=obj, user=request.user)


@admin.register(CandidateEvaluation)
class CandidateEvaluationAdmin(ReadOnlyAdmin):
    deletable = True
    list_display = (
        "id",
        "policy",
        "candidate",
        "champion",
        "status",
        "action",
        "metric",
        "candidate_value",
        "champion_value",
        "rollout",
        "created_at",
    )
    list_filter = ("status", "action")
    readonly_fields = (
        "policy",
        "candidate",
        "champion",
        "dataset_version",
        "trigger",
        "status",
        "action",
        "metric",
        "min_improvement",
        "candidate_value",
        "champion_value",
        "candidate_metrics",
        "champion_metrics",
        "window",
        "reason",
        "rollout",
        "celery_task_id",
        "dispatches",
        "dispatched_at",
        "created_at",
        "started_at",
        "finished_at",
        "log_lines",
    )
    exclude = ("log",)

    @admin.display(description="Log")
    def log_lines(self, obj):
        return format_html(
            "<pre>{}</pre>",
            "\n".join(
                f"{line.get('ts', '')} {line.get('level', '')} {line.get('message', '')}" for line in obj.log or []
            ),
        )
