from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_display import (
    add_service_errors,
    PRETTY_JSON_FIELDS,
    format_metric,
    json_display,
    short_time,
    status_badge as badge,
    validation_error_text,
)
from apps.core.roles import is_ml_staff

from .forms import ExperimentAdminForm, TrainingScheduleAdminForm, TrainNowForm
from .choices import RUN_ACTIVE, RunOrigin, ScheduleKind
from .models import Experiment, RunEvent, TrainingRun, TrainingSchedule
from .services.experiments import experiment_create, experiment_training_config, experiment_update
from .services.runs import RunStateError
from .services.schedules import training_schedule_delete, training_schedule_save
from .services.training_pipeline import training_run_request_stop, training_run_retry, training_run_start


def status_badge(run: TrainingRun):
    return badge(run.status, run.get_status_display())


def progress_bar(run: TrainingRun):
    return format_html('<div class="portal-progress" title="{}%"><div style="width:{}%"></div></div>',
                       f"{run.progress:.0f}", f"{max(0.0, min(run.progress, 100.0)):.1f}")


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
class ExperimentAdmin(StaffActionsMixin, admin.ModelAdmin):
    form = ExperimentAdminForm
    formfield_overrides = PRETTY_JSON_FIELDS
    # Few, short columns so the list fits 1280 px; the rest is on the change page.
    list_display = ["name", "dataset", "task", "metric_col", "default_model", "auto_retrain", "last_run"]
    list_filter = ["task", "default_framework", "retrain_on_new_data"]
    search_fields = ["name", "dataset__name"]
    actions = ["train_now"]
    inlines = [ScheduleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset").prefetch_related(
            Prefetch("runs", queryset=TrainingRun.objects.order_by("-created_at", "-id"), to_attr="recent_runs")
        )

    @admin.display(description="metric", ordering="primary_metric")
    def metric_col(self, obj):
        return f"{obj.primary_metric} ({obj.get_metric_direction_display().lower()})" if obj.metric_direction else obj.primary_metric

    @admin.display(description="default model", ordering="default_framework")
    def default_model(self, obj):
        return f"{obj.default_framework}/{obj.default_model_type}"

    @admin.display(description="auto-retrain", boolean=True, ordering="retrain_on_new_data")
    def auto_retrain(self, obj):
        return obj.retrain_on_new_data

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
        experiments = list(queryset)
        form = TrainNowForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            started = self._start_runs(request, form, experiments)
            if started is not None:
                links = format_html_join(", ", '<a href="{}">run {}</a>', (
                    (reverse("admin:training_trainingrun_change", args=[r.pk]), r.pk) for r in started))
                self.message_user(request, format_html("Queued {}.", links), messages.SUCCESS)
                return None
        # First visit, or an error: the same page again with what was typed and each error beside its field.
        return render(request, "admin/training/experiment/train_now.html", {
            **self.admin_site.each_context(request),
            "title": "Train now",
            "experiments": experiments,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    def _start_runs(self, request, form, experiments) -> list[TrainingRun] | None:
        """All selected experiments start, or none: a bad setting for one of them puts the error on
        the form (named after that experiment when there are several) and queues nothing."""
        data = form.cleaned_data
        started = []
        try:
            with transaction.atomic():
                for experiment in experiments:
                    prefix = f"{experiment.name}: " if len(experiments) > 1 else ""
                    try:
                        config = experiment_training_config(
                            experiment=experiment, framework=data["framework"] or None,
                            model_type=data["model_type"] or None, params=data["params"],
                            device=data["device"] or None,
                        )
                        started.append(training_run_start(experiment=experiment, user=request.user, seed=data["seed"],
                                                          origin=RunOrigin.ADMIN, **config))
                    except ValidationError as exc:
                        add_service_errors(form, exc, prefix=prefix)
                if form.errors:
                    raise _NothingStarted
        except _NothingStarted:
            return None
        return started


class _NothingStarted(Exception):
    """Rolls back the runs already created when a later experiment's settings are refused."""


def schedule_fire_times(schedule: TrainingSchedule, *, now=None) -> tuple:
    """(last, next) fire time of a schedule as beat sees it: last from the schedule's own tick record
    (or beat's last_run_at), next from the PeriodicTask's celery schedule, None when beat has no task.
    An overdue task (beat was down) fires at the next beat tick: `now`."""
    task = schedule.periodic_task
    last = getattr(schedule, "last_tick_at", None) or (task.last_run_at if task else None)
    if task is None or not task.enabled:
        return last, None
    now = now or timezone.now()
    # Beat counts from last_run_at, and from when the task was saved before its first run.
    since = task.last_run_at or task.date_changed or now
    remaining = task.schedule.remaining_estimate(since)
    # remaining_estimate reads the clock itself a moment after `now`: round to the second it means.
    upcoming = (now + remaining + timedelta(milliseconds=500)).replace(microsecond=0)
    return last, max(now, upcoming)


class RunEventInline(admin.TabularInline):
    model = RunEvent
    fields = ["created_at", "from_status", "to_status", "attempt", "reason", "actor"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(StaffActionsMixin, admin.ModelAdmin):
    # Six short columns so the list fits 1280 px beside the navigation and the filters; the progress
    # bar shows only while a run is active, and origin is a filter instead of a column.
    list_display = ["id", "experiment", "model_col", "status_col", "metric_col", "created_col"]
    list_filter = ["status", "framework", "device", "origin"]
    search_fields = ["experiment__name", "id"]
    list_select_related = ["experiment"]
    actions = ["cancel", "retry"]
    inlines = [RunEventInline]
    change_form_template = "admin/training/trainingrun/change_form.html"
    # Status, epoch, progress and ETA are not fields here: the live widget on top shows them, pushed
    # over the WebSocket, and a server-rendered copy would disagree with it until the next reload.
    fieldsets = [
        (None, {"fields": ["experiment", "stop_reason", "error_message", "framework", "model_type", "params_json",
                           "device", "queue", "seed", "origin", "register_model"]}),
        ("Results", {"fields": ["val_metrics_json", "test_metrics_json", "primary_metric_col", "artifact_uri",
                                "artifact_sha256", "signature_json"]}),
        ("Data", {"fields": ["dataset_version", "dataset_sha256", "feature_spec_json"]}),
        ("Execution", {"fields": ["attempts", "max_attempts", "celery_task_id", "worker_host", "worker_pid",
                                  "queued_at", "started_at", "heartbeat_at", "finished_at", "cpu_seconds"],
                       "classes": ["collapse"]}),
        ("Reproducibility", {"fields": ["code_version", "library_versions_json", "plugin_json", "trial_id", "retry_of",
                                        "idempotency_key", "created_by"], "classes": ["collapse"]}),
        ("Traceback", {"fields": ["traceback"], "classes": ["collapse"]}),
    ]
    params_json = json_display("params")
    val_metrics_json = json_display("val_metrics", "validation metrics", digits=4, open_=True)
    test_metrics_json = json_display("test_metrics", "test metrics", digits=4, open_=True)
    signature_json = json_display("signature")
    library_versions_json = json_display("library_versions", "library versions")
    plugin_json = json_display("plugin")
    feature_spec_json = json_display("feature_spec", "feature spec")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in TrainingRun._meta.fields] + [
            "params_json", "val_metrics_json", "test_metrics_json", "signature_json", "library_versions_json",
            "plugin_json", "feature_spec_json", "primary_metric_col"]

    @admin.display(description="primary metric (val)")
    def primary_metric_col(self, obj):
        return self.metric_col(obj)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="model", ordering="framework")
    def model_col(self, obj):
        # <wbr>: a long "xgboost/gradient_boosting" may wrap at the slash instead of widening the table.
        return format_html("{}/<wbr>{}", obj.framework, obj.model_type)

    @admin.display(description="created", ordering="created_at")
    def created_col(self, obj):
        return short_time(obj.created_at)

    @admin.display(description="status", ordering="status")
    def status_col(self, obj):
        if obj.status in RUN_ACTIVE:
            return format_html("{} {}", status_badge(obj), progress_bar(obj))
        return status_badge(obj)

    @admin.display(description="metric (val)", ordering="primary_metric_value")
    def metric_col(self, obj):
        if obj.primary_metric_value is None:
            return "—"
        return f"{obj.experiment.primary_metric} {format_metric(obj.primary_metric_value)}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is not None:
            extra_context = {
                **(extra_context or {}),
                "run": run,
                "model_versions": run.model_versions.select_related("registered_model"),
                "can_act": is_ml_staff(request.user),
                # Every field is read-only: a Save button would promise an edit that cannot happen.
                "show_save": False, "show_save_and_continue": False,
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
                self.message_user(request, f"Run {run.pk}: {validation_error_text(exc)}", messages.WARNING)

    @admin.action(description="Retry selected runs", permissions=["act"])
    def retry(self, request, queryset):
        self.require_act(request)
        for run in queryset:
            try:
                new = training_run_retry(run=run, user=request.user)
                self.message_user(request, f"Run {run.pk}: retried as run {new.pk}.", messages.SUCCESS)
            except (RunStateError, ValidationError) as exc:
                self.message_user(request, f"Run {run.pk}: {validation_error_text(exc)}", messages.WARNING)


@admin.register(TrainingSchedule)
class TrainingScheduleAdmin(StaffActionsMixin, admin.ModelAdmin):
    form = TrainingScheduleAdminForm
    formfield_overrides = PRETTY_JSON_FIELDS
    list_display = ["name", "experiment", "when", "enabled", "last_fired", "next_fire", "beat_task"]
    list_select_related = ["experiment", "periodic_task__crontab", "periodic_task__interval"]
    readonly_fields = ["last_fired", "next_fire"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "experiment__name"]

    @admin.display(description="when")
    def when(self, obj):
        return obj.cron if obj.kind == ScheduleKind.CRON else f"every {obj.every} {obj.unit}"

    @admin.display(description="last fired")
    def last_fired(self, obj):
        return short_time(schedule_fire_times(obj)[0])

    @admin.display(description="next fire")
    def next_fire(self, obj):
        if not obj.enabled:
            return "disabled"
        return short_time(schedule_fire_times(obj)[1])

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
