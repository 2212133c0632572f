"""Read-only admin for what the portal writes itself (events, logs, served predictions, immutable
versions): shown, never added or edited in admin. One base for pages, one for inlines."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    # True where staff may clear old rows by hand (alert events and deliveries, delivery jobs).
    deletable = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


class ReadOnlyInline(admin.TabularInline):
    """Rows under their parent's page; they are made elsewhere (services, the worker)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
