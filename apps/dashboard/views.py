from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from apps.core.roles import has_portal_role, role_of


@require_GET
@login_required
@ensure_csrf_cookie
def dashboard_page(request):
    """The live dashboard. Anonymous users go to the admin login; users without a role get a 403 page.

    The CSRF cookie is set here because the dashboard's staff actions POST with the session.
    """
    if not has_portal_role(request.user):
        return render(request, "dashboard/forbidden.html", status=403)
    return render(request, "dashboard/index.html", {"role": role_of(request.user)})
