from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from apps.core.admin_acts import StaffActionsMixin
from apps.core.admin_display import validation_error_text
from apps.core.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from apps.core.roles import is_ml_staff

from . import selectors
from .choices import VersionSource
from .forms import FeaturePreviewForm, FeatureSpecAdminForm, VersionUploadForm, pretty_json
from .models import Dataset, DatasetVersion, FeatureSpec
from .preprocessing import DataError, SpecError
from .services import dataset_version_create, feature_spec_create


_errors = validation_error_text


def histogram_bars(histogram: dict | None) -> list[dict]:
    """Bars for the profile template: height in percent of the tallest bin."""
    if not histogram or not histogram.get("counts"):
        return []
    counts, edges = histogram["counts"], histogram["edges"]
    top = max(counts) or 1
    return [
        {"height": round(100 * c / top, 1), "count": c, "low": edges[i], "high": edges[i + 1]}
        for i, c in enumerate(counts)
    ]


class VersionInline(ReadOnlyInline):
    model = DatasetVersion
    fields = ["link", "rows", "size_bytes", "file_format", "sha_short", "source", "created_by", "created_at"]
    readonly_fields = fields

    @admin.display(description="version")
    def link(self, obj):
        return format_html(
            '<a href="{}">v{}</a>', reverse("admin:datasets_datasetversion_change", args=[obj.pk]), obj.version
        )

    @admin.display(description="sha256")
    def sha_short(self, obj):
        return obj.sha256[:12]


@admin.register(Dataset)
class DatasetAdmin(StaffActionsMixin, admin.ModelAdmin):
    list_display = ["name", "task", "target_column", "time_column", "entity_column", "version_count"]
    search_fields = ["name", "description"]
    list_filter = ["task"]
    inlines = [VersionInline]
    change_form_template = "admin/datasets/dataset/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        # The columns are fixed once versions and specs were checked against them.
        if obj is not None:
            return ["name", "task", "target_column", "time_column", "entity_column", "created_by"]
        return ["created_by"]

    @admin.display(description="versions")
    def version_count(self, obj):
        return obj.versions.count()

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        return [
            path("<int:pk>/upload/", self.admin_site.admin_view(self.upload_view), name="datasets_dataset_upload"),
        ] + super().get_urls()

    def upload_view(self, request, pk):
        dataset = get_object_or_404(Dataset, pk=pk)
        self.require_act(request)
        form = VersionUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                version, created = dataset_version_create(
                    dataset=dataset, file=upload, filename=upload.name, user=request.user, source=VersionSource.ADMIN
                )
            except ValidationError as exc:
                form.add_error(
                    "file" if "file" in getattr(exc, "error_dict", {}) else None,
                    exc.message_dict.get("file", exc.messages) if hasattr(exc, "error_dict") else exc.messages,
                )
            else:
                if created:
                    messages.success(request, f"Stored {version} ({version.rows} rows).")
                else:
                    messages.info(
                        request, f"Identical content is already stored as {version}; nothing new was created."
                    )
                return HttpResponseRedirect(reverse("admin:datasets_datasetversion_change", args=[version.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "dataset": dataset,
            "form": form,
            "title": f"Upload a new version of {dataset.name}",
        }
        return render(request, "admin/datasets/dataset/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_upload": is_ml_staff(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    # Immutable: uploads go through the dataset page (validation, dedup), and models and runs refer
    # to versions, so none is edited or deleted here.
    list_display = ["__str__", "rows", "size_bytes", "file_format", "source", "created_by", "created_at"]
    list_filter = ["dataset", "source", "file_format"]
    search_fields = ["dataset__name", "sha256", "original_filename"]
    fields = [
        "dataset",
        "version",
        "original_filename",
        "file_format",
        "size_bytes",
        "rows",
        "sha256",
        "file",
        "source",
        "created_by",
        "created_at",
        "schema_table",
        "profile_view",
        "preview",
    ]
    readonly_fields = fields

    @admin.display(description="schema")
    def schema_table(self, obj):
        return mark_safe(render_to_string("admin/datasets/schema.html", {"schema": obj.schema, "rows": obj.rows}))

    @admin.display(description="profile")
    def profile_view(self, obj):
        columns = []
        for name, profile in (obj.profile or {}).items():
            columns.append({"name": name, "profile": profile, "bars": histogram_bars(profile.get("histogram"))})
        return mark_safe(render_to_string("admin/datasets/profile.html", {"columns": columns}))

    @admin.display(description="first rows")
    def preview(self, obj):
        try:
            table = selectors.dataset_version_preview(version=obj, rows=15)
        except selectors.DatasetFileError as exc:
            return format_html('<b style="color:#dc2626">{}</b>', str(exc))
        return mark_safe(render_to_string("admin/datasets/table.html", table))


@admin.register(FeatureSpec)
class FeatureSpecAdmin(StaffActionsMixin, admin.ModelAdmin):
    form = FeatureSpecAdminForm
    list_display = ["name", "version", "dataset", "history_rows", "created_by", "created_at"]
    list_filter = ["dataset"]
    search_fields = ["name", "description"]
    actions = ["preview_features"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["dataset", "name", "description", "spec"]
        return [
            "dataset",
            "name",
            "version",
            "description",
            "history_rows",
            "spec_json",
            "links",
            "created_by",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # experiments and models refer to spec versions

    @admin.display(description="spec")
    def spec_json(self, obj):
        return format_html('<pre style="max-height:40em;overflow:auto">{}</pre>', pretty_json(obj.spec))

    @admin.display(description="")
    def links(self, obj):
        preview = reverse("admin:datasets_featurespec_preview", args=[obj.pk])
        new_version = reverse("admin:datasets_featurespec_add") + f"?from={obj.pk}"
        return format_html(
            '<a class="button" href="{}">Preview features</a> <a class="button" href="{}">Edit as a new version</a>',
            preview,
            new_version,
        )

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        source = request.GET.get("from")
        if source and source.isdigit():
            spec = FeatureSpec.objects.filter(pk=int(source)).first()
            if spec is not None:
                initial.update(dataset=spec.dataset_id, name=spec.name, description=spec.description, spec=spec.spec)
        return initial

    def save_model(self, request, obj, form, change):
        self.require_act(request)
        saved, created = feature_spec_create(
            dataset=obj.dataset,
            name=obj.name,
            spec=form.cleaned_data["spec"],
            description=obj.description,
            user=request.user,
        )
        obj.pk, obj.version, obj.history_rows = saved.pk, saved.version, saved.history_rows
        obj._state.adding = False
        if not created:
            messages.info(request, f"The spec is identical to {saved}; no new version was made.")

    def save_related(self, request, form, formsets, change):
        pass  # no relations beyond the service's own writes

    @admin.action(description="Preview features (first selected spec)")
    def preview_features(self, request, queryset):
        first = queryset.first()
        return HttpResponseRedirect(reverse("admin:datasets_featurespec_preview", args=[first.pk]))

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/", self.admin_site.admin_view(self.preview_view), name="datasets_featurespec_preview"
            ),
        ] + super().get_urls()

    def preview_view(self, request, pk):
        feature_spec = get_object_or_404(FeatureSpec.objects.select_related("dataset"), pk=pk)
        if not self.has_view_permission(request, feature_spec):
            raise PermissionDenied
        dataset = feature_spec.dataset
        form = FeaturePreviewForm(request.GET or None, dataset=dataset)
        latest = selectors.dataset_version_latest(dataset=dataset)
        number, rows = (latest.version if latest else None), 20
        if request.GET and form.is_valid():
            number, rows = form.cleaned_data["version"], form.cleaned_data["rows"]
        elif latest is not None:
            form = FeaturePreviewForm(initial={"version": number, "rows": rows}, dataset=dataset)
        preview = error = None
        if number is None:
            error = f"{dataset.name} has no version yet."
        else:
            version = selectors.dataset_version_get(dataset=dataset, version=number)
            try:
                preview = selectors.feature_preview(version=version, spec=feature_spec.spec, rows=rows)
            except (SpecError, DataError, selectors.DatasetFileError) as exc:
                error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "feature_spec": feature_spec,
            "form": form,
            "preview": preview,
            "error": error,
            "version_number": number,
            "title": f"Features of {feature_spec} on {dataset.name}",
        }
        return render(request, "admin/datasets/featurespec/preview.html", context)
