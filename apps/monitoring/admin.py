"""Read-only admin views of what was served and the ground truth that came back; the window
metrics per deployment and version show on each deployment's admin page."""

from django.contrib import admin

from apps.core.admin_readonly import ReadOnlyAdmin

from .models import Feedback, PredictionLog


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = (
        "served_at",
        "deployment",
        "model_version",
        "status",
        "shadow",
        "latency_ms",
        "n_rows",
        "request_id",
    )
    list_filter = ("status", "shadow", "deployment")
    search_fields = ("request_id", "inputs_hash", "routing_key_hash")
    date_hierarchy = "served_at"
    list_select_related = ("deployment", "model_version__registered_model")
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        # Table sizes and the oldest raw row say whether retention keeps up; drift warnings say
        # which served features no longer look like the training data.
        from django.conf import settings

        from .selectors import served_drift_warnings
        from .services.retention import monitoring_storage

        context = {
            "storage": monitoring_storage(),
            "drift_warnings": served_drift_warnings(),
            "drift_warn": settings.MONITORING_DRIFT_WARN_PSI,
            "drift_alert": settings.MONITORING_DRIFT_ALERT_PSI,
        }
        return super().changelist_view(request, extra_context={**context, **(extra_context or {})})


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "deployment",
        "model_version",
        "shadow",
        "n",
        "n_correct",
        "log_loss_sum",
        "sq_error_sum",
        "served_at",
    )
    list_filter = ("shadow", "deployment")
    search_fields = ("prediction__request_id",)
    list_select_related = ("deployment", "model_version__registered_model")
    raw_id_fields = ("prediction",)
