from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import readiness, reported_problems


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = readiness()
    failing = sorted(name for name, state in checks.items() if state != "ok")
    # A broken model-type plugin is reported but does not make the portal unready: every other
    # model type still trains and serves.
    extra = {"model_type_plugins": problems} if (problems := reported_problems()) else {}
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing, "checks": checks, **extra}, status=503)
    return JsonResponse({"status": "ok", "checks": checks, **extra})
