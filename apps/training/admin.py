import json
import re
from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.db.models.fields.json import KeyTransform
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_readonly import ReadOnlyInline
from apps.core.admin_charts import evaluation_panel, line_chart
from apps.core.admin_display import (
    add_service_errors,
    PRETTY_JSON_FIELDS,
    FrameworkAndCreatedColumns,
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
    return format_html(
        '<div class="portal-progress" title="{}%"><div style="width:{}%"></div></div>',
        f"{run.progress:.0f}",
        f"{max(0.0, min(run.progress, 100.0)):.1f}",
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
        return (
            super()
            .get_queryset(request)
            .select_related("dataset")
            .prefetch_related(
                Prefetch("runs", queryset=TrainingRun.objects.order_by("-created_at", "-id"), to_attr="recent_runs")
            )
        )

    @admin.display(description="metric", ordering="primary_metric")
    def metric_col(self, obj):
        return (
            f"{obj.primary_metric} ({obj.get_metric_direction_display().lower()})"
            if obj.metric_direction
            else obj.primary_metric
        )

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
            data = {
                k: v
                for k, v in data.items()
                if k
                in {
                    "feature_spec",
                    "target",
                    "task",
                    "primary_metric",
                    "metric_direction",
                    "default_framework",
                    "default_model_type",
                    "default_params",
                    "default_device",
                    "seed",
                    "retrain_on_new_data",
                    "registered_model_name",
                    "description",
                }
            }
            saved = experiment_create(
                name=form.cleaned_data["name"], dataset=form.cleaned_data["dataset"], user=request.user, **data
            )
        obj.pk = saved.pk

    @admin.action(description="Train now", permissions=["act"])
    def train_now(self, request, queryset):
        self.require_act(request)
        experiments = list(queryset)
        form = TrainNowForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            started = self._start_runs(request, form, experiments)
            if started is not None:
                links = format_html_join(
                    ", ",
                    '<a href="{}">run {}</a>',
                    ((reverse("admin:training_trainingrun_change", args=[r.pk]), r.pk) for r in started),
                )
                self.message_user(request, format_html("Queued {}.", links), messages.SUCCESS)
                return None
        # First visit, or an error: the same page again with what was typed and each error beside its field.
        return render(
            request,
            "admin/training/experiment/train_now.html",
            {
                **self.admin_site.each_context(request),
                "title": "Train now",
                "experiments": experiments,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

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
                            experiment=experiment,
                            framework=data["framework"] or None,
                            model_type=data["model_type"] or None,
                            params=data["params"],
                            device=data["device"] or None,
                        )
                        started.append(
                            training_run_start(
                                experiment=experiment,
                                user=request.user,
                                seed=data["seed"],
                                origin=RunOrigin.ADMIN,
                                **config,
                            )
                        )
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


CONDITION = re.compile(r"^(?:(val|test|params)\.)?([A-Za-z_][\w]*)(<=|>=|<|>|=)(.+)$")
LOOKUPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "exact"}


def run_search_conditions(search_term: str) -> tuple[list, list[str]]:
    """Split a run search into conditions (JSON key, lookup, value) and plain words.

    `name<op>value`: a metric name (any task's, e.g. accuracy, rmse) reads the validation metrics,
    `test.name` the test metrics, anything else (or `params.name`) the params. Numbers compare as
    numbers; `=` also takes true/false and words. An unreadable condition comes back as its error text."""
    from apps.frameworks.metrics import metric_names

    metrics = set(metric_names("regression")) | set(metric_names("classification"))
    conditions, words = [], []
    for term in search_term.split():
        match = CONDITION.match(term)
        if not match:
            words.append(term)
            continue
        scope, name, op, raw = match.groups()
        field = {"val": "val_metrics", "test": "test_metrics", "params": "params"}.get(scope) or (
            "val_metrics" if name in metrics else "params"
        )
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # a bare word: a choice param such as activation=relu
        if op != "=" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            conditions.append(f"Search “{term}”: {op} needs a number after it, e.g. {name}{op}0.5.")
            continue
        conditions.append((KeyTransform(name, field), LOOKUPS[op], value))
    return conditions, words


def _differs(values: list) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def runs_compare(*, runs: list[TrainingRun]) -> dict:
    """Rows of settings, params and metrics with a value per run (and whether they differ), and the
    validation curves of the primary metric and the loss, one line per run."""
    from .selectors import metric_curves

    def rows(values_of):
        names = list(dict.fromkeys(name for run in runs for name in (values_of(run) or {})))
        out = []
        for name in names:
            values = [(values_of(run) or {}).get(name) for run in runs]
            out.append(
                {
                    "name": name,
                    "values": [format_metric(v) if isinstance(v, float) else "—" if v is None else v for v in values],
                    "differs": _differs(values),
                }
            )
        return out

    def setting(run):
        return {
            "experiment": run.experiment.name,
            "status": run.get_status_display(),
            "model": f"{run.framework}/{run.model_type}",
            "trigger": run.get_origin_display(),
            "dataset version": str(run.dataset_version) if run.dataset_version_id else None,
            "seed": run.seed,
            "device": run.device,
            "epochs trained": run.current_epoch,
        }

    curves = {run.pk: metric_curves(run=run) for run in runs}
    primaries = list(dict.fromkeys(run.experiment.primary_metric for run in runs))
    charts = []
    for metric in [f"val_{p}" for p in primaries] + ["val_loss"]:
        series = [(f"run {run.pk}", curves[run.pk].get(metric, [])) for run in runs]
        if any(points for _, points in series):
            charts.append(
                {
                    "metric": metric,
                    "svg": line_chart(series, x_label="epoch", y_label=metric, chart_id=f"compare-{metric}"),
                }
            )
    return {
        "runs": runs,
        "charts": charts,
        "sections": [
            ("Settings", rows(setting)),
            ("Parameters", rows(lambda r: r.params)),
            ("Validation metrics", rows(lambda r: r.val_metrics)),
            ("Test metrics", rows(lambda r: r.test_metrics)),
        ],
    }


class TriggerFilter(admin.ChoicesFieldListFilter):
    """The run's origin, under the word users look for: what triggered it (admin, API, schedule,
    new data, tuning…)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "trigger"


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    fields = ["created_at", "from_status", "to_status", "attempt", "reason", "actor"]
    readonly_fields = fields


@admin.register(TrainingRun)
class TrainingRunAdmin(StaffActionsMixin, FrameworkAndCreatedColumns, admin.ModelAdmin):
    # Six short columns so the list fits 1280 px beside the navigation and the filters; the progress
    # bar shows only while a run is active, and origin is a filter instead of a column.
    list_display = ["id", "experiment", "model_col", "status_col", "metric_col", "created_col"]
    list_filter = ["status", "framework", "model_type", ("origin", TriggerFilter), "device", "experiment__task"]
    search_fields = ["experiment__name", "id"]
    search_help_text = (
        "Experiment name or run id; or conditions on results and settings, e.g. "
        "accuracy>0.6, test.rmse<=1.5, epochs=5, activation=relu (several: all must hold)."
    )
    list_select_related = ["experiment"]
    actions = ["compare_runs", "cancel", "retry"]
    inlines = [RunEventInline]
    change_form_template = "admin/training/trainingrun/change_form.html"
    # Status, epoch, progress and ETA are not fields here: the live widget on top shows them, pushed
    # over the WebSocket, and a server-rendered copy would disagree with it until the next reload.
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "experiment",
                    "stop_reason",
                    "error_message",
                    "framework",
                    "model_type",
                    "params_json",
                    "device",
                    "queue",
                    "seed",
                    "origin",
                    "register_model",
                ]
            },
        ),
        (
            "Results",
            {
                "fields": [
                    "val_metrics_json",
                    "test_metrics_json",
                    "primary_metric_col",
                    "artifact_uri",
                    "artifact_sha256",
                    "signature_json",
                ]
            },
        ),
        ("Evaluation", {"fields": ["evaluation_col"]}),
        ("Data", {"fields": ["dataset_version", "dataset_sha256", "feature_spec_json"]}),
        (
            "Execution",
            {
                "fields": [
                    "attempts",
                    "max_attempts",
                    "celery_task_id",
                    "worker_host",
                    "worker_pid",
                    "queued_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "cpu_seconds",
                ],
                "classes": ["collapse"],
            },
        ),
        (
            "Reproducibility",
            {
                "fields": [
                    "code_version",
                    "library_versions_json",
                    "plugin_json",
                    "trial_id",
                    "retry_of",
                    "idempotency_key",
                    "created_by",
                ],
                "classes": ["collapse"],
            },
        ),
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
            "params_json",
            "val_metrics_json",
            "test_metrics_json",
            "signature_json",
            "library_versions_json",
            "plugin_json",
            "feature_spec_json",
            "primary_metric_col",
            "evaluation_col",
        ]

    @admin.display(description="on held-out rows")
    def evaluation_col(self, obj):
        return evaluation_panel(obj.evaluation)

    @admin.display(description="primary metric (val)")
    def primary_metric_col(self, obj):
        return self.metric_col(obj)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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

    def get_search_results(self, request, queryset, search_term):
        """Conditions like `accuracy>0.6` filter on the JSON results and params; the other words
        search experiment names and ids as usual. A condition that cannot be read is reported, and
        matches nothing, rather than being silently ignored."""
        conditions, words = run_search_conditions(search_term)
        for i, condition in enumerate(conditions):
            if isinstance(condition, str):
                self.message_user(request, condition, messages.WARNING)
                return queryset.none(), False
            # Through an alias, so a key that happens to be spelled like a lookup ("exact") stays a key.
            key, lookup, value = condition
            queryset = queryset.alias(**{f"_search_{i}": key}).filter(**{f"_search_{i}__{lookup}": value})
        queryset, may_have_duplicates = super().get_search_results(request, queryset, " ".join(words))
        return queryset, may_have_duplicates

    @admin.action(description="Compare selected runs side by side")
    def compare_runs(self, request, queryset):
        runs = list(queryset.select_related("experiment", "dataset_version").order_by("id"))
        if len(runs) < 2:
            self.message_user(request, "Select at least two runs to compare.", messages.WARNING)
            return None
        return render(
            request,
            "admin/training/trainingrun/compare.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Compare runs {', '.join(str(r.pk) for r in runs)}",
                "opts": self.model._meta,
                **runs_compare(runs=runs),
            },
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is not None:
            extra_context = {
                **(extra_context or {}),
                "run": run,
                "model_versions": run.model_versions.select_related("registered_model"),
                "can_act": is_ml_staff(request.user),
                # Every field is read-only: a Save button would promise an edit that cannot happen.
                "show_save": False,
                "show_save_and_continue": False,
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
    # Five columns so the list fits 1280 px beside the filters: "next fire" says "disabled" for a
    # disabled schedule, and the beat task link is on the change page.
    list_display = ["name", "experiment", "when", "last_tick", "next_fire"]
    list_select_related = ["experiment", "periodic_task__crontab", "periodic_task__interval", "last_tick_run"]
    # The tick record is written by beat's task only: shown, never edited (a hand-typed "started"
    # would lie about what the schedule did). force_next is the one knob a user sets for the next tick.
    readonly_fields = [
        "last_fired",
        "next_fire",
        "beat_task",
        "last_tick_outcome_col",
        "last_tick_reason",
        "last_tick_run_link",
    ]
    list_filter = ["kind", "enabled", "last_tick_outcome", "force_next"]
    search_fields = ["name", "experiment__name"]
    fieldsets = [
        (None, {"fields": ["name", "experiment", "enabled"]}),
        ("When", {"fields": ["kind", "cron", "every", "unit", "last_fired", "next_fire", "beat_task"]}),
        ("What to train", {"fields": ["framework", "model_type", "params", "device"]}),
        ("Next tick", {"fields": ["force_next", "last_tick_outcome_col", "last_tick_reason", "last_tick_run_link"]}),
    ]

    @admin.display(description="last tick", ordering="last_tick_at")
    def last_tick(self, obj):
        """When it last fired, what that tick did and why, in one cell so the list still fits 1280 px."""
        last = schedule_fire_times(obj)[0]
        if not obj.last_tick_outcome:
            return short_time(last)
        reason = obj.last_tick_reason
        return format_html(
            '{} {}<div class="portal-quiet" title="{}">{}</div>',
            short_time(last),
            badge(obj.last_tick_outcome),
            reason,
            reason if len(reason) <= 60 else reason[:59] + "…",
        )

    @admin.display(description="last tick outcome")
    def last_tick_outcome_col(self, obj):
        if not obj.last_tick_outcome:
            return "no tick yet"
        return format_html("{} at {}", badge(obj.last_tick_outcome), short_time(obj.last_tick_at))

    @admin.display(description="last tick's run")
    def last_tick_run_link(self, obj):
        run = obj.last_tick_run
        if run is None:
            return "—"
        url = reverse("admin:training_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">run {}</a> {}', url, run.pk, status_badge(run))

    @admin.display(description="when")
    def when(self, obj):
        # nowrap: "0 6 * * 1-5" broken over two lines reads as two schedules.
        text = obj.cron if obj.kind == ScheduleKind.CRON else f"every {obj.every} {obj.unit}"
        return format_html('<span style="white-space:nowrap">{}</span>', text)

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
