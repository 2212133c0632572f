from django.contrib import admin, messages

from .models import ApiToken
from .services import api_token_create


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("key_id", "user", "name", "created_at", "expires_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("user__username", "name", "key_id")
    readonly_fields = ("key_id", "last_used_at", "created_at")
    fields = ("user", "name", "expires_at", "revoked", "key_id", "last_used_at", "created_at")

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, raw = api_token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        messages.warning(request, f"Copy this token now, it will not be shown again: {raw}")
