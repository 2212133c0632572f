from rest_framework.permissions import SAFE_METHODS, BasePermission

from .roles import has_portal_role, is_ml_staff, may_predict, may_send_feedback


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


PREDICT_DENIED = "Your account may not ask for predictions: it needs the ML Staff, Analyst or Prediction Client role."
FEEDBACK_DENIED = "Only ML Staff and Prediction Clients may send ground truth: it moves the rollout gates."


class HasPortalRole(BasePermission):
    """A person's role (staff or analyst), any method: for POSTs that change nothing, such as a spec check."""

    message = "Your account has no portal role (ML Staff or Analyst)."

    def has_permission(self, request, view):
        return has_portal_role(request.user)


class MayPredict(BasePermission):
    """Any role, any method: predictions, which analysts' and the product's clients call."""

    message = PREDICT_DENIED

    def has_permission(self, request, view):
        return may_predict(request.user)


class MaySendFeedback(BasePermission):
    message = FEEDBACK_DENIED

    def has_permission(self, request, view):
        return may_send_feedback(request.user)
