"""Admin: deployments with versions, weights, window metrics and events; rollouts with stage and
gates; actions promote / pause / resume / abort / roll back behind a confirmation page, ML Staff only."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from apps.core.admin_display import (
    PrettyJSONFormField,
    format_metric,
    json_block,
    json_display,
    short_time,
    status_badge,
    validation_error_text,
)
from apps.core.roles import is_ml_staff
from apps.registry.models import ModelVersion

from .choices import OPEN_ROLLOUT_STATUSES, GateState, RolloutAction, RolloutStatus
from .models import Deployment, DeploymentEvent, DeploymentVersion, Rollout
from .selectors import deployment_open_rollout
from .services.gates import GATE_SETTING_LABELS, GATE_STATE_WORDS, STAGE_MINIMUM_LABELS, gate_label, gate_setting_rows
from .services.model_deployment_service import (
    deployment_create,
    deployment_rollback,
    rollout_create,
    rollout_transition,
    validate_gates,
    validate_stages,
)

CONFIRM_TEMPLATE = "admin/deployments/confirm_action.html"


class DeploymentVersionInline(ReadOnlyInline):
    model = DeploymentVersion
    fields = ("model_version", "role", "weight", "shadow", "updated_at")
    readonly_fields = fields
    ordering = ("-weight", "position")


class DeploymentEventInline(ReadOnlyInline):
    model = DeploymentEvent
    fields = ("created_at", "kind", "actor_label", "from_status", "to_status", "stage_index", "reason")
    readonly_fields = fields
    ordering = ("-created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created_at")


class DeploymentAddForm(forms.ModelForm):
    initial_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.select_related("registered_model"),
        help_text="Serves all traffic at first (the champion).",
    )

    class Meta:
        model = Deployment
        fields = ("name", "description")


class RollbackForm(forms.Form):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        label="Roll back to",
        error_messages={"required": "Choose the version to roll back to."},
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, deployment=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ModelVersion.objects.filter(
            registered_model=deployment.registered_model
        ).select_related("registered_model")


ROLLBACK_METRIC_COLUMNS = 4


def _metrics_seen(metrics: dict | None) -> dict:
    """The window metrics an event recorded, as `lines`: one short line per version ("v2: 120 requests,
    errors 0.0%, p99 12 ms, accuracy 0.91 on 40 rows"); another shape comes as `json` to show formatted."""
    versions = (metrics or {}).get("versions") if isinstance(metrics, dict) else None
    if not isinstance(versions, dict):
        return {"lines": None, "json": json_block(metrics, digits=4)}
    lines = []
    for version, w in sorted(versions.items()):
        parts = [f"{w.get('requests', 0)} requests"]
        if w.get("error_rate") is not None:
            parts.append(f"errors {w['error_rate']:.1%}")
        if w.get("p99_ms") is not None:
            parts.append(f"p99 {w['p99_ms']:.0f} ms")
        quality = next(((name, w[name]) for name in ("accuracy", "rmse") if w.get(name) is not None), None)
        if quality:
            parts.append(f"{quality[0]} {format_metric(quality[1], 3)} on {w.get('feedback_rows', 0)} rows")
        lines.append((version, ", ".join(parts)))
    return {"lines": lines}


def _served_text(first, until, *, serving_now: bool) -> str:
    if serving_now:
        return f"since {short_time(first)}" if first else "now"
    if first is None:
        return "never"
    return f"{short_time(first)} – {short_time(until)}"


def rollback_candidates(deployment: Deployment) -> tuple[list[str], list[dict]]:
    """Every version of the deployment's model with what one needs to pick a rollback target:
    its validation metrics, its share of traffic now, and when it last served (read from the
    traffic snapshot each DeploymentEvent keeps, oldest first), newest version first.

    Returns (metric names shown, rows); the experiment's primary metric comes first."""
    versions = list(
        ModelVersion.objects.filter(registered_model=deployment.registered_model)
        .select_related("training_run__experiment")
        .order_by("-version")
    )
    serving = {r.model_version_id: r for r in deployment.versions.all() if r.weight > 0 or r.shadow}
    # A version served from the first change that gave it traffic until the change that took it away.
    first_served, served_until, before = {}, {}, set()
    for event in deployment.events.order_by("created_at", "id").only("created_at", "traffic"):
        after = {e.get("model_version_id") for e in event.traffic or [] if (e.get("weight") or 0) > 0}
        for version_id in after:
            first_served.setdefault(version_id, event.created_at)
            served_until.pop(version_id, None)
        for version_id in before - after:
            served_until[version_id] = event.created_at
        before = after
    primary = [v.training_run.experiment.primary_metric for v in versions if v.training_run_id]
    names = list(
        dict.fromkeys(
            primary + [name for v in versions for name in ((v.metrics or {}).get("val") or {}) if name != "loss"]
        )
    )[:ROLLBACK_METRIC_COLUMNS]
    rows = []
    for v in versions:
        val = (v.metrics or {}).get("val") or {}
        now = serving.get(v.pk)
        rows.append(
            {
                "version": v,
                "metrics": [format_metric(val.get(name)) for name in names],
                "serving_now": now is not None,
                "share": ("shadow" if now.shadow else f"{now.weight:g}% ({now.get_role_display().lower()})")
                if now
                else "",
                "served": _served_text(first_served.get(v.pk), served_until.get(v.pk), serving_now=now is not None),
            }
        )
    return names, rows


@admin.register(Deployment)
class DeploymentAdmin(StaffActionsMixin, admin.ModelAdmin):
    list_display = ("name", "registered_model", "serving", "rollout_state", "generation", "updated_at")
    search_fields = ("name", "registered_model__name")
    readonly_fields = ("registered_model", "generation", "created_by", "created_at", "updated_at", "monitoring")
    inlines = [DeploymentVersionInline, DeploymentEventInline]
    actions = ["rollback_action"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DeploymentAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "description", "initial_version")
        return (
            "name",
            "description",
            "max_batch_size",
            "max_batch_wait_ms",
            "registered_model",
            "generation",
            "created_by",
            "created_at",
            "updated_at",
            "monitoring",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("name", *self.readonly_fields)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_add_permission(self, request):
        return is_ml_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return is_ml_staff(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = deployment_create(
            name=form.cleaned_data["name"],
            model_version=form.cleaned_data["initial_version"],
            user=request.user,
            description=form.cleaned_data.get("description", ""),
        )
        obj.pk = created.pk
        obj.generation = created.generation

    @admin.display(description="serving")
    def serving(self, obj):
        rows = [r for r in obj.versions.select_related("model_version") if r.weight > 0 or r.shadow]
        return (
            ", ".join(f"v{r.model_version.version} {'shadow' if r.shadow else f'{r.weight:g}%'}" for r in rows) or "-"
        )

    @admin.display(description="rollout")
    def rollout_state(self, obj):
        rollout = deployment_open_rollout(deployment=obj)
        if rollout is None:
            return "-"
        return f"{rollout.get_status_display()} · stage {rollout.stage_index + 1}/{len(rollout.stages)} ({rollout.current_percent:g}%)"

    @admin.display(description="monitoring (last hour)")
    def monitoring(self, obj):
        from apps.monitoring.selectors import feature_drift, version_windows

        since = timezone.now() - timedelta(hours=1)
        windows = version_windows(deployment=obj, since=since)
        rows = []
        versions = ModelVersion.objects.select_related("dataset_version").in_bulk(list(windows))
        for version_id, w in sorted(windows.items()):
            version = versions.get(version_id)
            drift = feature_drift(deployment=obj, model_version=version, since=since) if version else {}
            worst = max(
                ((f, d["psi"]) for f, d in drift.items() if d["psi"] is not None), key=lambda x: x[1], default=None
            )
            quality = (
                f"accuracy {w.accuracy:.3f}"
                if w.accuracy is not None
                else f"RMSE {w.rmse:.4g}"
                if w.rmse is not None
                else "no feedback"
            )
            rows.append(
                (
                    f"v{version.version if version else version_id}",
                    w.requests,
                    "-" if w.error_rate is None else f"{w.error_rate:.2%}",
                    " / ".join("-" if v is None else f"{v:.1f}" for v in (w.p50_ms, w.p95_ms, w.p99_ms)),
                    f"{quality} ({w.feedback_rows} rows)",
                    "-" if worst is None else f"{worst[0]}: {worst[1]:.3f}",
                )
            )
        return render_to_string("admin/deployments/deployment/monitoring.html", {"rows": rows})

    @admin.action(description="Roll back to a version…", permissions=["act"])
    def rollback_action(self, request, queryset):
        self.require_act(request)
        if queryset.count() != 1:
            self.message_user(request, "Roll back one deployment at a time.", messages.WARNING)
            return None
        deployment = queryset.first()
        form = RollbackForm(request.POST if "confirm" in request.POST else None, deployment=deployment)
        if "confirm" in request.POST and form.is_valid():
            try:
                deployment_rollback(
                    deployment=deployment,
                    model_version=form.cleaned_data["model_version"],
                    user=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:  # TransitionConflict is one too
                self.message_user(request, f"{deployment}: {validation_error_text(exc)}", messages.ERROR)
                return None
            self.message_user(request, f"{deployment} now serves {form.cleaned_data['model_version']} at 100%.")
            return None
        metric_names, candidates = rollback_candidates(deployment)
        return TemplateResponse(
            request,
            "admin/deployments/deployment/rollback.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Roll back {deployment.name}",
                "opts": self.model._meta,
                "deployment": deployment,
                "form": form,
                "action": "rollback_action",
                "metric_names": metric_names,
                "candidates": candidates,
                "chosen": str(form["model_version"].value() or ""),
                "selected": [deployment.pk],
            },
        )


class RolloutAddForm(forms.ModelForm):
    stages = PrettyJSONFormField(
        initial=validate_stages(None),
        help_text=(
            "[{percent, min_duration_s, min_predictions, min_feedback}], last at 100; per stage: "
            + "; ".join(f"{key} = {label}" for key, label in STAGE_MINIMUM_LABELS.items())
        ),
    )
    gates = PrettyJSONFormField(
        initial=validate_gates(None),
        help_text="; ".join(f"{key} = {label}" for key, label in GATE_SETTING_LABELS.items()),
    )

    class Meta:
        model = Rollout
        fields = ("deployment", "challenger", "stages", "gates")

    def clean_stages(self):
        try:
            return validate_stages(self.cleaned_data["stages"])
        except ValidationError as exc:
            raise forms.ValidationError(validation_error_text(exc)) from exc

    def clean_gates(self):
        try:
            return validate_gates(self.cleaned_data["gates"])
        except ValidationError as exc:
            raise forms.ValidationError(validation_error_text(exc)) from exc

    def clean(self):
        data = super().clean()
        deployment, challenger = data.get("deployment"), data.get("challenger")
        if deployment and challenger and challenger.registered_model_id != deployment.registered_model_id:
            self.add_error("challenger", f"{challenger} is not a version of {deployment.registered_model}")
        if deployment and Rollout.objects.filter(deployment=deployment, status__in=OPEN_ROLLOUT_STATUSES).exists():
            self.add_error("deployment", f"{deployment} already has an open rollout")
        return data


# Pending is neutral grey with an ellipsis, never a check mark: it has not decided, so it must not look like a pass.
GATE_STATE_LOOK = {
    GateState.PASS: ("#2e7d32", "✓ "),
    GateState.FAIL: ("#c62828", "✗ "),
    GateState.PENDING: ("#6b7280", "… "),
}


def _gate_table(gate_status: dict) -> str:
    gates = []
    for g in (gate_status or {}).get("gates") or []:
        state = g.get("state") if g.get("state") in GATE_STATE_LOOK else GateState.PENDING
        color, mark = GATE_STATE_LOOK[state]
        gates.append(
            {
                "name": g.get("name", ""),
                "state": state,
                "label": gate_label(g),
                "color": color,
                "mark": mark,
                "words": GATE_STATE_WORDS[state],
                "detail": g.get("detail", ""),
            }
        )
    return render_to_string(
        "admin/deployments/rollout/gate_table.html",
        {
            "gates": gates,
            "action": (gate_status or {}).get("action", ""),
            "reason": (gate_status or {}).get("reason", ""),
        },
    )


@admin.register(Rollout)
class RolloutAdmin(StaffActionsMixin, admin.ModelAdmin):
    # Few, short columns so the list fits 1280 px; gate details are on the change page.
    list_display = (
        "id",
        "deployment",
        "champion",
        "challenger",
        "status_col",
        "stage",
        "gates_summary",
        "evaluated_at",
    )
    list_filter = ("status", "deployment")
    change_form_template = "admin/deployments/rollout/change_form.html"
    readonly_fields = (
        "deployment",
        "champion",
        "challenger",
        "status_col",
        "stage",
        "stages_display",
        "gates_display",
        "gate_table",
        "timeline",
        "started_at",
        "stage_started_at",
        "evaluated_at",
        "ended_at",
        "created_by",
        "created_at",
    )
    actions = ["start_action", "promote_action", "pause_action", "resume_action", "abort_action", "rollback_action"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = RolloutAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("deployment", "challenger", "stages", "gates")
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_add_permission(self, request):
        return is_ml_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return is_ml_staff(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            created = rollout_create(
                deployment=form.cleaned_data["deployment"],
                challenger=form.cleaned_data["challenger"],
                stages=form.cleaned_data["stages"],
                gates=form.cleaned_data["gates"],
                user=request.user,
            )
        except ValidationError as exc:  # TransitionConflict is one too
            raise PermissionDenied(validation_error_text(exc)) from exc
        obj.pk = created.pk

    @admin.display(description="status", ordering="status")
    def status_col(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    # The buttons a rollout's own page offers staff: each posts the list action of the same name,
    # which asks for confirmation first, so the page adds no second way to change a rollout.
    VERBS = {
        RolloutStatus.DRAFT: [("start_action", "Start"), ("abort_action", "Abort")],
        RolloutStatus.RUNNING: [
            ("promote_action", "Promote"),
            ("pause_action", "Pause"),
            ("abort_action", "Abort"),
            ("rollback_action", "Roll back"),
        ],
        RolloutStatus.PAUSED: [
            ("resume_action", "Resume"),
            ("abort_action", "Abort"),
            ("rollback_action", "Roll back"),
        ],
    }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        rollout = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "verbs": self.VERBS.get(rollout.status, []) if rollout and self.has_act_permission(request) else [],
            # Every field of an existing rollout is read-only: no Save button that promises an edit.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="stage")
    def stage(self, obj):
        return f"{obj.stage_index + 1}/{len(obj.stages)} ({obj.current_percent:g}% to challenger)"

    @admin.display(description="gates")
    def gates_summary(self, obj):
        status = obj.gate_status or {}
        if not status.get("action"):
            return "not evaluated yet"
        return f"{status['action']}: {status.get('reason', '')}"[:80]

    @admin.display(description="stages")
    def stages_display(self, obj):
        stages = [
            {**s, "percent": f"{s['percent']:g}", "min_duration_s": f"{s['min_duration_s']:g}"} for s in obj.stages
        ]
        return render_to_string(
            "admin/deployments/rollout/stages.html", {"stages": stages, "labels": STAGE_MINIMUM_LABELS}
        )

    @admin.display(description="gate settings")
    def gates_display(self, obj):
        return render_to_string(
            "admin/deployments/rollout/gate_settings.html", {"settings": gate_setting_rows(obj.gates)}
        )

    @admin.display(description="gate status")
    def gate_table(self, obj):
        return _gate_table(obj.gate_status)

    @admin.display(description="timeline")
    def timeline(self, obj):
        """Every event of this rollout, oldest first: what happened, at which stage, the challenger's
        share after it, who or what acted and why, and the metrics the decision saw."""
        rows = []
        for event in obj.events.select_related("actor").order_by("created_at", "id"):
            share = next(
                (e.get("weight") for e in event.traffic or [] if e.get("model_version_id") == obj.challenger_id), 0
            )
            moved = event.from_status and event.to_status and event.from_status != event.to_status
            rows.append(
                {
                    "kind": event.kind,
                    "when": short_time(event.created_at),
                    "what": event.get_kind_display(),
                    "from_badge": status_badge(event.from_status) if moved else "",
                    "to_badge": status_badge(event.to_status) if event.to_status else "",
                    "stage": "—" if event.stage_index is None else f"{event.stage_index + 1}/{len(obj.stages)}",
                    "share": f"{share or 0:g}%",
                    "by": event.actor_label,
                    "reason": event.reason or "—",
                    "metrics": _metrics_seen(event.metrics),
                }
            )
        return render_to_string("admin/deployments/rollout/timeline.html", {"events": rows})

    def _act(self, request, queryset, action: RolloutAction, label: str, explanation: str):
        self.require_act(request)
        if "confirm" in request.POST:
            done = 0
            for rollout in queryset:
                seen = request.POST.get(f"stage_{rollout.pk}")
                try:
                    rollout_transition(
                        rollout=rollout,
                        action=action,
                        user=request.user,
                        expected_stage=int(seen) if seen not in (None, "") else None,
                        reason=request.POST.get("reason", ""),
                    )
                    done += 1
                except ValidationError as exc:  # TransitionConflict is one too
                    self.message_user(request, f"Rollout {rollout.pk}: {validation_error_text(exc)}", messages.ERROR)
            if done:
                self.message_user(request, f"{label}: {done} rollout(s).")
            return None
        return TemplateResponse(
            request,
            CONFIRM_TEMPLATE,
            {
                **self.admin_site.each_context(request),
                "title": f"{label} rollout(s)?",
                "opts": self.model._meta,
                "objects": list(queryset.select_related("deployment", "champion", "challenger")),
                "action": request.POST.get("action"),
                "action_label": label,
                "explanation": explanation,
                "with_stage": True,
                "selected": list(queryset.values_list("pk", flat=True)),
                "form": None,
            },
        )

    @admin.action(description="Start (draft → first stage)", permissions=["act"])
    def start_action(self, request, queryset):
        return self._act(request, queryset, RolloutAction.START, "Start", "Traffic moves to the first stage's split.")

    @admin.action(description="Promote to the next stage…", permissions=["act"])
    def promote_action(self, request, queryset):
        return self._act(
            request,
            queryset,
            RolloutAction.PROMOTE,
            "Promote",
            "Each rollout moves one stage on from the stage shown; at the last stage the challenger becomes champion.",
        )

    @admin.action(description="Pause…", permissions=["act"])
    def pause_action(self, request, queryset):
        return self._act(
            request, queryset, RolloutAction.PAUSE, "Pause", "Weights stay as they are; gates stop deciding."
        )

    @admin.action(description="Resume…", permissions=["act"])
    def resume_action(self, request, queryset):
        return self._act(request, queryset, RolloutAction.RESUME, "Resume", "Gates decide again.")

    @admin.action(description="Abort…", permissions=["act"])
    def abort_action(self, request, queryset):
        return self._act(request, queryset, RolloutAction.ABORT, "Abort", "All traffic goes back to the champion.")

    @admin.action(description="Roll back…", permissions=["act"])
    def rollback_action(self, request, queryset):
        return self._act(
            request,
            queryset,
            RolloutAction.ROLLBACK,
            "Roll back",
            "All traffic goes back to the champion; the rollout ends as rolled back.",
        )


@admin.register(DeploymentEvent)
class DeploymentEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "deployment",
        "kind",
        "actor_label",
        "from_status",
        "to_status",
        "stage_index",
        "short_reason",
    )
    list_filter = ("kind", "deployment")
    search_fields = ("reason", "actor_label", "deployment__name")
    readonly_fields = (
        "deployment",
        "rollout",
        "kind",
        "from_status",
        "to_status",
        "stage_index",
        "actor",
        "actor_label",
        "reason",
        "traffic_json",
        "metrics_json",
        "created_at",
    )
    fields = readonly_fields
    traffic_json = json_display("traffic", open_=True)
    metrics_json = json_display("metrics", digits=4)

    @admin.display(description="reason")
    def short_reason(self, obj):
        return obj.reason[:100]
