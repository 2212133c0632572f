"""DRF's JSON parser, refusing bodies that are nested too deeply or hold NUL before parsing them."""
import io

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

from .jsonlimits import json_body_problem


class JSONParser(DRFJSONParser):
    """The default JSON parser of every DRF view (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        checked = raw
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            try:
                checked = raw.decode(encoding).encode("utf-8")
            except (LookupError, UnicodeError):
                raise ParseError(f"body: the request body is not {encoding} text") from None
        problem = json_body_problem(checked)
        if problem:
            raise ParseError(f"body: {problem}")
        return super().parse(io.BytesIO(raw), media_type, parser_context)
