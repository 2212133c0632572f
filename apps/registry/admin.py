from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html

from apps.core.roles import is_ml_staff

from .models import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from .selectors import model_versions_compare
from .services import model_alias_set, model_version_update


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class VersionInline(ReadOnlyInline):
    model = ModelVersion
    fields = ["version", "framework", "model_type", "dataset_version", "training_run", "created_at"]
    readonly_fields = fields
    ordering = ["-version"]


class AliasInline(ReadOnlyInline):
    model = ModelAlias
    fields = ["alias", "version", "updated_by", "updated_at"]
    readonly_fields = fields


class AliasEventInline(ReadOnlyInline):
    model = AliasEvent
    fk_name = "registered_model"
    fields = ["created_at", "alias", "from_version", "to_version", "actor", "reason"]
    readonly_fields = fields
    show_change_link = False


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


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "framework", "model_type", "primary_metric", "dataset_version", "run_link",
                    "aliases_col", "created_at"]
    list_filter = ["registered_model", "framework", "model_type"]
    search_fields = ["registered_model__name", "description"]
    list_select_related = ["registered_model", "dataset_version__dataset", "training_run__experiment"]
    actions = ["compare_versions", "make_champion", "make_challenger"]
    editable = {"tags", "description"}

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ModelVersion._meta.fields if f.name not in self.editable or not is_ml_staff(request.user)]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not is_ml_staff(request.user):
            raise PermissionDenied("Only ML Staff may edit versions.")
        model_version_update(version=obj, tags=form.cleaned_data.get("tags"),
                             description=form.cleaned_data.get("description"))

    def has_act_permission(self, request):
        return is_ml_staff(request.user)

    @admin.display(description="primary metric (val)")
    def primary_metric(self, obj):
        experiment = obj.training_run.experiment
        value = (obj.metrics or {}).get("val", {}).get(experiment.primary_metric)
        return f"{experiment.primary_metric}={value:.4g}" if isinstance(value, (int, float)) else "—"

    @admin.display(description="run")
    def run_link(self, obj):
        return format_html('<a href="{}">#{}</a>', reverse("admin:training_trainingrun_change",
                                                           args=[obj.training_run_id]), obj.training_run_id)

    @admin.display(description="aliases")
    def aliases_col(self, obj):
        return ", ".join(obj.aliases) or "—"

    @admin.action(description="Compare selected versions side by side")
    def compare_versions(self, request, queryset):
        versions = list(queryset.select_related("registered_model", "dataset_version", "training_run")
                        .order_by("registered_model__name", "version"))
        if len(versions) < 2:
            self.message_user(request, "Select at least two versions to compare.", messages.WARNING)
            return None
        return render(request, "admin/registry/modelversion/compare.html", {
            **self.admin_site.each_context(request),
            "title": "Compare model versions",
            "opts": self.model._meta,
            **model_versions_compare(versions=versions),
        })

    def _set_alias(self, request, queryset, alias: str):
        if not is_ml_staff(request.user):
            raise PermissionDenied("Only ML Staff may move aliases.")
        if queryset.count() != 1:
            self.message_user(request, f"Select exactly one version to make {alias}.", messages.WARNING)
            return
        version = queryset.select_related("registered_model").get()
        try:
            model_alias_set(model=version.registered_model, alias=alias, version=version, user=request.user,
                            reason="set in admin")
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
class AliasEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "registered_model", "alias", "from_version", "to_version", "actor", "reason"]
    list_filter = ["registered_model", "alias"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AliasEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
