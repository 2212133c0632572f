from rest_framework.permissions import SAFE_METHODS, BasePermission

from .roles import has_portal_role, is_ml_staff


class IsAnalystOrStaff(BasePermission):
    """Reads for analysts and staff; writes for staff only. Users without a role get nothing."""

    message = "Your account has no portal role (ML Staff or Analyst)."

    def has_permission(self, request, view):
        user = request.user
        if not has_portal_role(user):
            return False
        if request.method in SAFE_METHODS:
            return True
        self.message = "Only ML Staff may change this."
        return is_ml_staff(user)


class IsMLStaff(BasePermission):
    message = "Only ML Staff may do this."

    def has_permission(self, request, view):
        return is_ml_staff(request.user)


class HasPortalRole(BasePermission):
    """Any role, any method: for endpoints such as predictions that analysts' clients may call."""

    message = "Your account has no portal role (ML Staff or Analyst)."

    def has_permission(self, request, view):
        return has_portal_role(request.user)
