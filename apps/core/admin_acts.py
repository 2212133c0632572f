"""One permission idiom for every admin action that changes something: ML Staff act, analysts look.

Mark such actions `@admin.action(..., permissions=["act"])`: Django then leaves them out of the
analyst's action menu, and a POST of one anyway (a stale page, a hand-made request) is refused
here with the styled 403 page that says why, instead of being silently ignored.
"""

from django.core.exceptions import PermissionDenied

from .roles import is_ml_staff

STAFF_ONLY = "Only ML Staff may do this; analysts can look at everything here but not change it."


class StaffActionsMixin:
    def has_act_permission(self, request) -> bool:
        return is_ml_staff(request.user)

    def require_act(self, request):
        if not is_ml_staff(request.user):
            raise PermissionDenied(STAFF_ONLY)

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            declared = {name for _, name, _ in self._get_base_actions()}
            if action in declared:
                raise PermissionDenied(STAFF_ONLY)
        return super().changelist_view(request, extra_context)
