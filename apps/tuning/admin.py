from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_readonly import ReadOnlyInline
from apps.core.admin_display import (
    PRETTY_JSON_FIELDS,
    FrameworkAndCreatedColumns,
    format_metric,
    json_display,
    status_badge,
    validation_error_text,
)

from apps.core.roles import is_ml_staff

from . import selectors
from .choices import StudyStatus, TrialStatus
from .forms import StudyAdminForm
from .models import Trial, TuningEvent, TuningStudy
from .services import study_create, study_pause, study_resume, study_start, study_stop, study_update
from .services.studies import EDITABLE_FIELDS


def _badge(status: str, label: str):
    return status_badge(status, label)


def trial_value(trial: Trial) -> str:
    # A pruned trial's value is where it was stopped, not a score to compare with the others: say so.
    if trial.status == TrialStatus.PRUNED:
        return "pruned" + (f" (at {format_metric(trial.value)})" if trial.value is not None else "")
    return format_metric(trial.value)


class TrialInline(ReadOnlyInline):
    model = Trial
    fields = ["number", "status_col", "params_col", "value_col", "epochs", "run_link", "error"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["number"]
    # Collapsed: the live widget above is the study's trial list; this one is for the links to each run.
    classes = ["collapse"]
    verbose_name_plural = "trials with links to their runs (as of page load)"

    @admin.display(description="status")
    def status_col(self, obj):
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description="params")
    def params_col(self, obj):
        return ", ".join(f"{name}={format_metric(value, 6)}" for name, value in (obj.params or {}).items()) or "—"

    @admin.display(description="value")
    def value_col(self, obj):
        return trial_value(obj)

    @admin.display(description="epochs reported")
    def epochs(self, obj):
        series = obj.intermediate_series()
        if not series:
            return "—"
        pruned = f", pruned at {obj.prune_requested_at_epoch}" if obj.prune_requested_at_epoch else ""
        return f"{len(series)} (last {series[max(series)]:.4g}{pruned})"

    @admin.display(description="run")
    def run_link(self, obj):
        if not obj.run_id:
            return "—"
        return format_html(
            '<a href="{}">run {}</a>', reverse("admin:training_trainingrun_change", args=[obj.run_id]), obj.run_id
        )


class EventInline(ReadOnlyInline):
    model = TuningEvent
    fields = ["created_at", "trial", "from_status", "to_status", "reason", "actor"]
    readonly_fields = fields


@admin.register(TuningStudy)
class TuningStudyAdmin(StaffActionsMixin, FrameworkAndCreatedColumns, admin.ModelAdmin):
    form = StudyAdminForm
    formfield_overrides = PRETTY_JSON_FIELDS
    # Few, short columns so the list fits 1280 px; the rest is on the change page.
    list_display = [
        "name",
        "experiment",
        "model_col",
        "strategy",
        "status_col",
        "trials_col",
        "best_col",
        "created_col",
    ]
    list_filter = ["status", "strategy", "framework", "pruner"]
    search_fields = ["name", "experiment__name"]
    actions = ["start_studies", "pause_studies", "resume_studies", "stop_studies"]
    inlines = [TrialInline, EventInline]
    change_form_template = "admin/tuning/tuningstudy/change_form.html"
    STATE_FIELDS = ["status", "started_at", "finished_at", "running_seconds", "model_version", "created_by"]

    def get_queryset(self, request):
        return selectors.study_list()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        fields = ["name", "experiment", *EDITABLE_FIELDS]
        return fields + self.STATE_FIELDS if obj else fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.status != StudyStatus.DRAFT:
            return ["name", "experiment", *EDITABLE_FIELDS, *self.STATE_FIELDS]
        return ["name", "experiment", *self.STATE_FIELDS]

    def has_delete_permission(self, request, obj=None):
        return False  # a study's trials and events are its audit trail; stop it instead

    @admin.display(description="status", ordering="status")
    def status_col(self, obj):
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description="trials")
    def trials_col(self, obj):
        running = f", {obj.n_running} running" if getattr(obj, "n_running", 0) else ""
        return f"{getattr(obj, 'n_finished', 0)}/{obj.max_trials}{running}"

    @admin.display(description="best")
    def best_col(self, obj):
        best = selectors.study_best_trial(study=obj)
        return "—" if best is None else f"#{best.number}: {format_metric(best.value)}"

    def save_model(self, request, obj, form, change):
        self.require_act(request)
        if change:
            if obj.status == StudyStatus.DRAFT:
                study_update(study=obj, data=form.resolved)
            return
        study = study_create(
            name=form.cleaned_data["name"],
            experiment=form.cleaned_data["experiment"],
            user=request.user,
            **form.resolved,
        )
        obj.pk = study.pk

    def save_related(self, request, form, formsets, change):
        pass  # trials and events are written by services only

    def change_view(self, request, object_id, form_url="", extra_context=None):
        study = self.get_object(request, object_id)
        if study is not None:
            # The charts, counts and best params are the live widget's (see the template).
            extra_context = {
                **(extra_context or {}),
                "study": study,
                "can_act": is_ml_staff(request.user),
                "verbs": _verbs_for(study.status),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _act(self, request, queryset, service, verb: str):
        self.require_act(request)
        done = []
        for study in queryset:
            try:
                service(study=study, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{study.name}: not {verb}: {validation_error_text(exc)}", messages.ERROR)
                continue
            done.append(study.name)
        if done:
            self.message_user(request, f"{verb.capitalize()}: {', '.join(done)}.", messages.SUCCESS)

    @admin.action(description="Start selected studies", permissions=["act"])
    def start_studies(self, request, queryset):
        self._act(request, queryset, study_start, "started")

    @admin.action(description="Pause selected studies", permissions=["act"])
    def pause_studies(self, request, queryset):
        self._act(request, queryset, study_pause, "paused")

    @admin.action(description="Resume selected studies", permissions=["act"])
    def resume_studies(self, request, queryset):
        self._act(request, queryset, study_resume, "resumed")

    @admin.action(description="Stop selected studies", permissions=["act"])
    def stop_studies(self, request, queryset):
        self._act(request, queryset, study_stop, "stopped")


def _verbs_for(status: str) -> list[tuple[str, str]]:
    """(admin action, button label) pairs that make sense for a study in `status`."""
    return {
        StudyStatus.DRAFT: [("start_studies", "Start"), ("stop_studies", "Stop")],
        StudyStatus.RUNNING: [("pause_studies", "Pause"), ("stop_studies", "Stop")],
        StudyStatus.PAUSED: [("resume_studies", "Resume"), ("stop_studies", "Stop")],
    }.get(status, [])


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status_col", "value_col", "run", "created_at"]
    list_filter = ["status"]
    search_fields = ["study__name"]
    list_select_related = ["study", "run"]

    params_json = json_display("params")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Trial._meta.fields] + ["params_json"]

    def get_fields(self, request, obj=None):
        return [("params_json" if f.name == "params" else f.name) for f in Trial._meta.fields if f.name != "id"]

    @admin.display(description="status", ordering="status")
    def status_col(self, obj):
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description="value", ordering="value")
    def value_col(self, obj):
        return trial_value(obj)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
