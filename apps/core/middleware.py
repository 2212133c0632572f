"""Refuses hostile input the views would otherwise turn into 500s, before any view runs."""
import re

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from .jsonlimits import json_body_problem

API_PREFIXES = ("/api/", "/v2/")
# These read their bodies with apps.deployments.serving.inputs.loads_body, which applies the same
# depth limit and names the field that holds a NUL itself; V2 errors have the protocol's own shape.
OWN_BODY_CHECKS = re.compile(r"^/(?:v2/|api/v1/deployments/[^/]+/(?:predict|feedback)/?$)")


def _refusal(path: str, field: str, message: str) -> JsonResponse:
    if path.startswith("/v2/"):
        return JsonResponse({"error": f"{field}: {message}"}, status=400)
    return JsonResponse({"detail": f"{field}: {message}", "field": field}, status=400)


class HostileInputMiddleware:
    """NUL in the path or query of an API request; JSON bodies nested past API_JSON_MAX_DEPTH or
    holding "\\u0000" (also for views that pin DRF's own JSONParser, which recurses). 400s naming
    what is at fault."""

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
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if request.method in ("GET", "HEAD", "OPTIONS") or not (
                content_type == "application/json" or content_type.endswith("+json")):
            return None
        if OWN_BODY_CHECKS.match(path):
            return None
        try:
            body = request.body
        except RequestDataTooBig:
            return None  # the view answers this one in its own words
        problem = json_body_problem(body)
        if problem:
            return _refusal(path, "body", problem)
        return None
