"""API requests: hostile input refused before any view runs, and every 4xx answered in JSON."""

from http import HTTPStatus

from django.http import JsonResponse


def is_v2_path(path: str) -> bool:
    """The Open Inference Protocol's paths: /v2 (server metadata) and everything under /v2/."""
    return path == "/v2" or path.startswith("/v2/")


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or is_v2_path(path)


def error_body(path: str, message: str, field: str | None = None) -> dict:
    """The error shape of the API a path belongs to (the OpenAPI components Error and V2Error)."""
    if is_v2_path(path):
        return {"error": f"{field}: {message}" if field else message}
    return {"detail": f"{field}: {message}", "field": field} if field else {"detail": message}


def _refusal(path: str, field: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(path, message, field), status=400)


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().lower() in (
        "application/json",
        "application/problem+json",
    )


class HostileInputMiddleware:
    """NUL in the path, query or a header of an API request: a 400 naming it. (JSON and form bodies
    are checked by apps.core.parsers, the prediction path's bodies by its own field checks.)

    A 4xx that Django itself answers for an API path (no route matches, an oversized or malformed
    request refused before DRF) is an HTML page or empty; clients and the OpenAPI schema expect JSON,
    so it is replaced by the API's error shape, keeping the status and headers such as Allow.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if not is_api_path(path):
            return self.get_response(request)
        refusal = self._check(request, path)
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        # DRF's own responses are left as negotiated (its browsable pages answer a browser in HTML).
        drf_rendered = hasattr(response, "accepted_renderer")
        if (
            400 <= response.status_code < 500
            and not drf_rendered
            and not getattr(response, "streaming", False)
            and not _is_json(response)
        ):
            response = self._as_json(response, path)
        return response

    def _check(self, request, path: str):
        if "\x00" in path:
            return _refusal(path, "path", "the URL path holds a NUL character (%00)")
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in query or "%00" in query:
            return _refusal(path, "query", "the query string holds a NUL character (%00)")
        # Views store some headers (Idempotency-Key); most servers refuse NUL there, not all do.
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                header = key[5:].replace("_", "-").title()
                return _refusal(path, header, "the header holds a NUL character")
        return None

    @staticmethod
    def _as_json(response, path: str):
        status = response.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Client error"
        messages = {404: "Not found: no API operation at this path.", 405: "Method not allowed."}
        replacement = JsonResponse(error_body(path, messages.get(status, f"{phrase}.")), status=status)
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in response:
                replacement[header] = response[header]
        return replacement
