"""Refuses hostile input the views would otherwise turn into 500s, before any view runs."""
from django.http import JsonResponse

API_PREFIXES = ("/api/", "/v2/")


def _refusal(path: str, field: str, message: str) -> JsonResponse:
    if path.startswith("/v2/"):
        return JsonResponse({"error": f"{field}: {message}"}, status=400)
    return JsonResponse({"detail": f"{field}: {message}", "field": field}, status=400)


class HostileInputMiddleware:
    """NUL in the path or query of an API request: a 400 naming it. (JSON bodies are checked by
    apps.core.parsers.JSONParser and the prediction path's loads_body.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if path.startswith(API_PREFIXES):
            refusal = self._check(request, path)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _check(self, request, path: str):
        if "\x00" in path:
            return _refusal(path, "path", "the URL path holds a NUL character (%00)")
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in query or "%00" in query:
            return _refusal(path, "query", "the query string holds a NUL character (%00)")
        return None
