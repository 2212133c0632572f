"""The portal's roles. Staff act (train, tune, deploy, roll back); analysts read; prediction clients
are the product's services: they ask for predictions and send back ground truth, and see nothing else
(no admin, no dashboard, no reads of the API)."""

from django.contrib.auth.models import AnonymousUser, Group

ML_STAFF = "ML Staff"
ANALYST = "Analyst"
PREDICTION_CLIENT = "Prediction Client"
ROLES = (ML_STAFF, ANALYST, PREDICTION_CLIENT)


def _group_names(user) -> set[str]:
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._portal_roles = cached
    return cached


def is_ml_staff(user) -> bool:
    if user is not None and getattr(user, "is_superuser", False) and user.is_active:
        return True
    return ML_STAFF in _group_names(user)


def is_analyst(user) -> bool:
    return ANALYST in _group_names(user)


def is_prediction_client(user) -> bool:
    return PREDICTION_CLIENT in _group_names(user)


def has_portal_role(user) -> bool:
    """A person's role: the admin, the dashboard and the API's reads (prediction clients have none)."""
    return is_ml_staff(user) or is_analyst(user)


def may_predict(user) -> bool:
    return has_portal_role(user) or is_prediction_client(user)


def may_send_feedback(user) -> bool:
    """Ground truth moves rollout gates: staff and the product's clients send it, analysts do not."""
    return is_ml_staff(user) or is_prediction_client(user)


def role_of(user) -> str | None:
    if is_ml_staff(user):
        return ML_STAFF
    if is_analyst(user):
        return ANALYST
    if is_prediction_client(user):
        return PREDICTION_CLIENT
    return None


def ensure_role_groups() -> dict[str, Group]:
    return {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}
