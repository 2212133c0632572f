"""The portal's DRF parsers: bodies nested too deeply, too large, or holding NUL are refused before
any view sees them, with a 400 (413 for size) that names the field at fault.

NUL ("\\u0000") cannot be stored in PostgreSQL's text or jsonb, so a NUL anywhere in a key or a
string value would otherwise end as a 500 at the first write.
"""

import io

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import FormParser as DRFFormParser
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.parsers import MultiPartParser as DRFMultiPartParser

from .jsonlimits import json_body_problem

NUL = "\x00"


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self):
        limit = body_limit()
        super().__init__(
            f"body: the request body is over {limit:,} bytes, the most the server accepts"
            if limit is not None
            else "body: the request body is larger than the server accepts"
        )


def body_limit() -> int | None:
    """DATA_UPLOAD_MAX_MEMORY_SIZE: Django's own limit for form bodies, applied to JSON bodies too."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _label(key: str) -> str:
    return "'" + key.replace(NUL, "\\u0000") + "'"


def nul_location(value) -> tuple[str, str] | None:
    """(field, where) of the first NUL in a key or a string of `value` (a parsed body), or None.

    `field` is the top-level key that holds it ("body" for a top-level key or a bare value), `where`
    the path inside it: ("tags", "tags['a\\u0000'] (a key)"), ("tags", "tags['a']"). Iterative, in
    document order: form data and service input are not bounded in depth as parsed JSON is.
    """
    stack = [(value, "", "")]
    while stack:
        item, field, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return field or "body", path or "body"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                key = str(key)
                if NUL in key:
                    return field or "body", f"{path}[{_label(key)}] (a key)" if path else f"the key {_label(key)}"
                children.append((child, field if path else key, f"{path}[{_label(key)}]" if path else key))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([(child, field, f"{path}[{i}]") for i, child in enumerate(item)]))
    return None


def refuse_nul(data, *, what: str = "JSON") -> None:
    """ValidationError {field: [message]} when `data` (a parsed body) holds a NUL in a key or string."""
    found = nul_location(data)
    if found is not None:
        field, where = found
        raise ValidationError({field: [f"{where} holds a NUL character (\\u0000), which cannot be stored"]})


class JSONParser(DRFJSONParser):
    """The default JSON parser of every DRF view (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = body_limit()
        raw = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        checked = raw
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            try:
                checked = raw.decode(encoding).encode("utf-8")
            except (LookupError, UnicodeError):
                raise ParseError(f"body: the request body is not {encoding} text") from None
        problem = json_body_problem(checked, refuse_nul=False)
        if problem:
            raise ParseError(f"body: {problem}")
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        # Cheap test first: only a body that spells a NUL escape is walked to name the field.
        if b"\\u0000" in checked.replace(b"\\\\", b""):
            refuse_nul(data)
        return data


def _refuse_nul_in_form(data) -> None:
    values = {key: data.getlist(key) for key in data}
    refuse_nul({key: found[0] if len(found) == 1 else found for key, found in values.items()})


class FormParser(DRFFormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul_in_form(data)
        return data


class MultiPartParser(DRFMultiPartParser):
    """Keys and text fields are checked; Django drops unprintable characters from file names, and
    file contents are the uploader's business."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_nul_in_form(parsed.data)
        return parsed
