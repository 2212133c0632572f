from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_display import PRETTY_JSON_FIELDS, FrameworkAndCreatedColumns, format_metric, json_display
from apps.core.admin_readonly import ReadOnlyAdmin, ReadOnlyInline

from apps.core.admin_charts import evaluation_panel
from apps.core.roles import is_ml_staff

from .models import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from .selectors import model_versions_compare
from .services import model_alias_set, model_version_update


class VersionInline(ReadOnlyInline):
    model = ModelVersion
    fields = ["version", "framework", "model_type", "dataset_version", "training_run", "created_at"]
    readonly_fields = fields
    ordering = ["-version"]
    show_change_link = True


class AliasInline(ReadOnlyInline):
    model = ModelAlias
    fields = ["alias", "version", "updated_by", "updated_at"]
    readonly_fields = fields
    show_change_link = True


class AliasEventInline(ReadOnlyInline):
    model = AliasEvent
    fk_name = "registered_model"
    fields = ["created_at", "alias", "from_version", "to_version", "actor", "reason"]
    readonly_fields = fields


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "last_version", "aliases_col", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["last_version", "created_by", "created_at"]
    fields = ["name", "description", "last_version", "created_by", "created_at"]
    inlines = [AliasInline, VersionInline, AliasEventInline]

    def has_add_permission(self, request):
        return False  # models appear when a run registers its first version

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["name"] if obj else [])

    @admin.display(description="aliases")
    def aliases_col(self, obj):
        return ", ".join(f"{a.alias}→v{a.version.version}" for a in obj.aliases.select_related("version")) or "—"


def metrics_table(metrics: dict | None):
    """{"val": {...}, "test": {...}} as one table, a row per metric and a column per split, rounded."""
    splits = [split for split, values in (metrics or {}).items() if isinstance(values, dict)]
    if not splits:
        return "—"
    names = list(dict.fromkeys(name for split in splits for name in metrics[split]))
    head = format_html_join("", '<th scope="col">{}</th>', ((split,) for split in splits))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html(
                    '<th scope="row">{}</th>{}',
                    name,
                    format_html_join(
                        "", '<td class="num">{}</td>', ((format_metric(metrics[split].get(name)),) for split in splits)
                    ),
                ),
            )
            for name in names
        ),
    )
    return format_html('<table class="portal-table portal-metrics"><tr><th>metric</th>{}</tr>{}</table>', head, body)


@admin.register(ModelVersion)
class ModelVersionAdmin(StaffActionsMixin, FrameworkAndCreatedColumns, admin.ModelAdmin):
    # Few, short columns so the list fits 1280 px; the rest is on the change page.
    list_display = ["__str__", "model_col", "primary_metric", "run_link", "aliases_col", "created_col"]
    list_filter = ["registered_model", "framework", "model_type", "archived_at"]
    search_fields = ["registered_model__name", "description"]
    list_select_related = ["registered_model", "dataset_version__dataset", "training_run__experiment"]
    actions = ["compare_versions", "make_champion", "make_challenger"]
    editable = {"tags", "description"}
    formfield_overrides = PRETTY_JSON_FIELDS
    DISPLAYS = {
        "metrics": "metrics_col",
        "params": "params_json",
        "signature": "signature_json",
        "library_versions": "library_versions_json",
        "plugin": "plugin_json",
        "evaluation": "evaluation_col",
    }
    SECTIONS = [
        (
            None,
            [
                "registered_model",
                "version",
                "framework",
                "model_type",
                "task",
                "description",
                "tags",
                "created_by",
                "created_at",
            ],
        ),
        ("Metrics", ["metrics"]),
        # Not a field of the version: the plots its training run stored on the same test split.
        ("Evaluation", ["evaluation"]),
        ("Artifact", ["artifact_uri", "artifact_sha256", "signature"]),
        ("Lineage", ["training_run", "params", "dataset_version", "dataset_sha256"]),
        ("Reproducibility", ["library_versions", "code_version", "plugin"]),
    ]
    params_json = json_display("params")
    signature_json = json_display("signature")
    library_versions_json = json_display("library_versions", "library versions")
    plugin_json = json_display("plugin")

    @admin.display(description="metrics")
    def metrics_col(self, obj):
        return metrics_table(obj.metrics)

    @admin.display(description="evaluation")
    def evaluation_col(self, obj):
        return evaluation_panel(obj.training_run.evaluation if obj.training_run_id else None)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The download button (object tools, beside History) is offered to ML Staff only.
        extra_context = {**(extra_context or {}), "can_download": is_ml_staff(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        download = path(
            "<int:object_id>/artifact.zip",
            self.admin_site.admin_view(self.artifact_download_view),
            name="registry_modelversion_artifact",
        )
        return [download, *super().get_urls()]

    def artifact_download_view(self, request, object_id: int):
        """The version's artifact as a streamed zip, for ML Staff: a model file is the product's IP."""
        from .downloads import artifact_zip_stream
        from .storage import ArtifactIntegrityError

        self.require_act(request)
        version = self.get_object(request, str(object_id))
        if version is None:
            raise Http404("No such model version.")
        try:
            chunks = artifact_zip_stream(uri=version.artifact_uri, sha256=version.artifact_sha256)
        except ArtifactIntegrityError as exc:
            self.message_user(request, f"{version}: cannot download: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:registry_modelversion_change", args=[version.pk]))
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        filename = f"{version.registered_model.name}-v{version.version}.zip"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["X-Artifact-SHA256"] = version.artifact_sha256
        return response

    def get_fieldsets(self, request, obj=None):
        # JSON fields shown formatted (read-only ones); a field this list does not know yet still shows, under "More".
        listed = {name for _, names in self.SECTIONS for name in names}
        editable = self._editable(request)
        shown = [
            (
                title,
                {
                    "fields": [name if name in editable else self.DISPLAYS.get(name, name) for name in names],
                    **({"classes": ["collapse"]} if title == "Reproducibility" else {}),
                },
            )
            for title, names in self.SECTIONS
        ]
        rest = [f.name for f in ModelVersion._meta.fields if f.name not in listed and f.name != "id"]
        return shown + ([("More", {"fields": rest})] if rest else [])

    def _editable(self, request) -> set[str]:
        return self.editable if is_ml_staff(request.user) else set()

    def get_readonly_fields(self, request, obj=None):
        editable = self._editable(request)
        return [f.name for f in ModelVersion._meta.fields if f.name not in editable] + list(self.DISPLAYS.values())

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        self.require_act(request)
        model_version_update(
            version=obj, tags=form.cleaned_data.get("tags"), description=form.cleaned_data.get("description")
        )

    @admin.display(description="primary metric (val)")
    def primary_metric(self, obj):
        experiment = obj.training_run.experiment
        value = (obj.metrics or {}).get("val", {}).get(experiment.primary_metric)
        return f"{experiment.primary_metric} {format_metric(value)}" if isinstance(value, (int, float)) else "—"

    @admin.display(description="run")
    def run_link(self, obj):
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:training_trainingrun_change", args=[obj.training_run_id]),
            obj.training_run_id,
        )

    @admin.display(description="aliases")
    def aliases_col(self, obj):
        return ", ".join(obj.aliases) or "—"

    @admin.action(description="Compare selected versions side by side")
    def compare_versions(self, request, queryset):
        versions = list(
            queryset.select_related("registered_model", "dataset_version", "training_run").order_by(
                "registered_model__name", "version"
            )
        )
        if len(versions) < 2:
            self.message_user(request, "Select at least two versions to compare.", messages.WARNING)
            return None
        return render(
            request,
            "admin/registry/modelversion/compare.html",
            {
                **self.admin_site.each_context(request),
                "title": "Compare model versions",
                "opts": self.model._meta,
                **model_versions_compare(versions=versions),
            },
        )

    def _set_alias(self, request, queryset, alias: str):
        self.require_act(request)
        if queryset.count() != 1:
            self.message_user(request, f"Select exactly one version to make {alias}.", messages.WARNING)
            return
        version = queryset.select_related("registered_model").get()
        try:
            model_alias_set(
                model=version.registered_model, alias=alias, version=version, user=request.user, reason="set in admin"
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return
        self.message_user(request, f"{version} is now {alias}.", messages.SUCCESS)

    @admin.action(description="Make the selected version champion", permissions=["act"])
    def make_champion(self, request, queryset):
        self._set_alias(request, queryset, "champion")

    @admin.action(description="Make the selected version challenger", permissions=["act"])
    def make_challenger(self, request, queryset):
        self._set_alias(request, queryset, "challenger")


@admin.register(AliasEvent)
class AliasEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "registered_model", "alias", "from_version", "to_version", "actor", "reason"]
    list_filter = ["registered_model", "alias"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AliasEvent._meta.fields]
