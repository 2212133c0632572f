from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.roles import is_ml_staff

from . import selectors
from .charts import metric_charts
from .choices import RunOrigin, RunStatus
from .forms import ExperimentAdminForm, TrainingScheduleAdminForm, TrainNowForm
from .models import Experiment, RunEvent, TrainingRun, TrainingSchedule
from .services.experiments import experiment_create, experiment_training_config, experiment_update
from .services.runs import RunStateError
from .services.schedules import training_schedule_delete, training_schedule_save
from .services.training_pipeline import training_run_request_stop, training_run_retry, training_run_start

STATUS_COLORS = {
    RunStatus.QUEUED: "#6b7280", RunStatus.RUNNING: "#2563eb", RunStatus.SUCCEEDED: "#16a34a",
    RunStatus.FAILED: "#dc2626", RunStatus.CANCELLED: "#d97706",
}


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


class ActsMixin:
    """Admin actions that change things are for ML Staff only (analysts browse read-only)."""

    def has_act_permission(self, request) -> bool:
        return is_ml_staff(request.user)

    def require_act(self, request):
        if not is_ml_staff(request.user):
            raise PermissionDenied("Only ML Staff may do this.")


def status_badge(run: TrainingRun):
    return format_html('<b style="color:{}">{}</b>', STATUS_COLORS.get(run.status, "#000"), run.get_status_display())


def progress_bar(run: TrainingRun):
    return format_html(
        '<div style="width:140px;background:#e5e7eb;border-radius:3px" title="{}%">'
        '<div style="width:{}%;background:{};height:10px;border-radius:3px"></div></div>',
        f"{run.progress:.0f}", f"{max(0.0, min(run.progress, 100.0)):.1f}", STATUS_COLORS.get(run.status, "#2563eb"),
    )


class ScheduleInline(admin.TabularInline):
    model = TrainingSchedule
    fields = ["name", "kind", "cron", "every", "unit", "enabled"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Experiment)
class ExperimentAdmin(ActsMixin, admin.ModelAdmin):
    form = ExperimentAdminForm
    list_display = ["name", "dataset", "task", "primary_metric", "default_framework", "default_model_type",
                    "retrain_on_new_data", "last_run"]
    list_filter = ["task", "default_framework", "retrain_on_new_data"]
    search_fields = ["name", "dataset__name"]
    actions = ["train_now"]
    inlines = [ScheduleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset").prefetch_related(
            Prefetch("runs", queryset=TrainingRun.objects.order_by("-created_at", "-id"), to_attr="recent_runs")
        )

    @admin.display(description="last run")
    def last_run(self, obj):
        run = obj.recent_runs[0] if getattr(obj, "recent_runs", None) else None
        if run is None:
            return "—"
        url = reverse("admin:training_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">#{}</a> {}', url, run.pk, status_badge(run))

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in form.cleaned_data if f not in ("name", "dataset")}
        if change:
            saved = experiment_update(experiment=obj, data=data)
        else:
            data = {k: v for k, v in data.items() if k in {
                "feature_spec", "target", "task", "primary_metric", "metric_direction", "default_framework",
                "default_model_type", "default_params", "default_device", "seed", "retrain_on_new_data",
                "registered_model_name", "description"}}
            saved = experiment_create(name=form.cleaned_data["name"], dataset=form.cleaned_data["dataset"],
                                      user=request.user, **data)
        obj.pk = saved.pk

    @admin.action(description="Train now", permissions=["act"])
    def train_now(self, request, queryset):
        self.require_act(request)
        form = TrainNowForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            started = []
            for experiment in queryset:
                data = form.cleaned_data
                try:
                    config = experiment_training_config(
                        experiment=experiment, framework=data["framework"] or None,
                        model_type=data["model_type"] or None, params=data["params"], device=data["device"] or None,
                    )
                    run = training_run_start(experiment=experiment, user=request.user, seed=data["seed"],
                                             origin=RunOrigin.ADMIN, **config)
                except ValidationError as exc:
                    self.message_user(request, f"{experiment.name}: not started: {_errors(exc)}", messages.ERROR)
                    continue
                started.append(run)
            if started:
                links = format_html_join(", ", '<a href="{}">run {}</a>', (
                    (reverse("admin:training_trainingrun_change", args=[r.pk]), r.pk) for r in started))
                self.message_user(request, format_html("Queued {}.", links), messages.SUCCESS)
            return None
        return render(request, "admin/training/experiment/train_now.html", {
            **self.admin_site.each_context(request),
            "title": "Train now",
            "experiments": queryset,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


class RunEventInline(admin.TabularInline):
    model = RunEvent
    fields = ["created_at", "from_status", "to_status", "attempt", "reason", "actor"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(ActsMixin, admin.ModelAdmin):
    list_display = ["id", "experiment", "framework", "model_type", "device", "status_col", "progress_col",
                    "attempts", "primary_metric_value", "origin", "created_at"]
    list_filter = ["status", "framework", "device", "origin"]
    search_fields = ["experiment__name", "id"]
    list_select_related = ["experiment"]
    actions = ["cancel", "retry"]
    inlines = [RunEventInline]
    change_form_template = "admin/training/trainingrun/change_form.html"
    fieldsets = [
        (None, {"fields": ["experiment", "status", "stop_reason", "error_message", "framework", "model_type", "params",
                           "device", "queue", "seed", "origin", "register_model"]}),
        ("Data", {"fields": ["dataset_version", "dataset_sha256", "feature_spec"]}),
        ("Execution", {"fields": ["attempts", "max_attempts", "celery_task_id", "worker_host", "worker_pid",
                                  "queued_at", "started_at", "heartbeat_at", "finished_at", "cpu_seconds",
                                  "current_epoch", "total_epochs", "progress", "eta_seconds"]}),
        ("Results", {"fields": ["val_metrics", "test_metrics", "primary_metric_value", "artifact_uri",
                                "artifact_sha256", "signature"]}),
        ("Reproducibility", {"fields": ["code_version", "library_versions", "plugin", "trial_id", "retry_of",
                                        "idempotency_key", "created_by"], "classes": ["collapse"]}),
        ("Traceback", {"fields": ["traceback"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_col(self, obj):
        return status_badge(obj)

    @admin.display(description="progress", ordering="progress")
    def progress_col(self, obj):
        return progress_bar(obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = selectors.run_list().filter(pk=object_id).first()
        if run is not None:
            extra_context = {
                **(extra_context or {}),
                "run": run,
                "status_badge": status_badge(run),
                "progress_bar": progress_bar(run),
                "charts": metric_charts(selectors.metric_curves(run=run)),
                "log_tail": selectors.run_log_tail(run_id=run.pk, lines=200),
                "model_versions": run.model_versions.select_related("registered_model"),
                "can_act": is_ml_staff(request.user),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Cancel selected runs", permissions=["act"])
    def cancel(self, request, queryset):
        self.require_act(request)
        for run in queryset:
            try:
                training_run_request_stop(run=run, user=request.user)
                self.message_user(request, f"Run {run.pk}: cancel requested.", messages.SUCCESS)
            except (RunStateError, ValidationError) as exc:
                self.message_user(request, f"Run {run.pk}: {_errors(exc)}", messages.WARNING)

    @admin.action(description="Retry selected runs", permissions=["act"])
    def retry(self, request, queryset):
        self.require_act(request)
        for run in queryset:
            try:
                new = training_run_retry(run=run, user=request.user)
                self.message_user(request, f"Run {run.pk}: retried as run {new.pk}.", messages.SUCCESS)
            except (RunStateError, ValidationError) as exc:
                self.message_user(request, f"Run {run.pk}: {_errors(exc)}", messages.WARNING)


@admin.register(TrainingSchedule)
class TrainingScheduleAdmin(ActsMixin, admin.ModelAdmin):
    form = TrainingScheduleAdminForm
    list_display = ["name", "experiment", "kind", "cron", "every", "unit", "framework", "model_type", "enabled",
                    "beat_task"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "experiment__name"]

    @admin.display(description="beat task")
    def beat_task(self, obj):
        if not obj.periodic_task_id:
            return "—"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[obj.periodic_task_id])
        return format_html('<a href="{}">#{}</a>', url, obj.periodic_task_id)

    def save_model(self, request, obj, form, change):
        training_schedule_save(schedule=obj, user=request.user)

    def delete_model(self, request, obj):
        training_schedule_delete(schedule=obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            training_schedule_delete(schedule=schedule)
