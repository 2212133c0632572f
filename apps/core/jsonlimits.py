"""Limits on JSON request bodies, measured on the bytes before any object is built.

Python's json module recurses once per nesting level, so a body of 10,000 `[` raises RecursionError
(a 500) while it is being parsed; the depth has to be known before parsing. `json_body_problem`
measures it without recursion: drop escaped backslashes and quotes, keep only quotes and brackets,
drop string contents, then strip innermost bracket pairs level by level. For valid JSON the figure is
exact; for invalid JSON it is at worst a refusal a moment before the parser's own.
"""

from __future__ import annotations

import re

from django.conf import settings

DEFAULT_MAX_DEPTH = 64
_DELETE = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")


def max_json_depth() -> int:
    return int(getattr(settings, "API_JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def _unescaped(raw: bytes) -> bytes:
    # Left to right, `\\` pairs go first, so in `\\"` the quote is a real one.
    return raw.replace(b"\\\\", b"").replace(b'\\"', b"")


def json_depth(raw: bytes, *, stop_after: int | None = None) -> int:
    """Deepest nesting of arrays and objects in the JSON text `raw` (UTF-8), without recursion.

    Each pass strips the innermost `[]`/`{}` pairs of the bracket skeleton, so a pass is one level
    and shallow bodies (every prediction request) cost a few passes over a short string.
    `stop_after`: give up counting past this depth (the caller only needs to know it is exceeded).
    """
    skeleton = _STRING.sub(b"", _unescaped(raw).translate(None, _DELETE))
    depth = 0
    while skeleton:
        stripped = _INNERMOST.sub(b"", skeleton)
        if stripped == skeleton:
            # Unbalanced: every opener left may still nest, as the parser would recurse into it.
            return depth + skeleton.count(b"[") + skeleton.count(b"{")
        skeleton, depth = stripped, depth + 1
        if stop_after is not None and depth > stop_after:
            break
    return depth


def json_body_problem(raw: bytes, *, refuse_nul: bool = True, max_depth: int | None = None) -> str | None:
    """Why the JSON text `raw` must be refused before it is parsed, or None.

    Too deep: nested past API_JSON_MAX_DEPTH. NUL: a "\\u0000" escape anywhere (keys and values),
    which PostgreSQL's text and jsonb cannot store.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    limit = max_json_depth() if max_depth is None else max_depth
    openers = raw.count(b"[") + raw.count(b"{")
    if openers > limit and json_depth(raw, stop_after=limit) > limit:
        return f"the JSON is nested deeper than {limit} levels"
    # Only `\\` pairs go first: `\\u0000` is a backslash followed by the text u0000, not a NUL.
    if refuse_nul and b"\\u0000" in raw and b"\\u0000" in raw.replace(b"\\\\", b""):
        return 'the JSON holds a NUL character ("\\u0000"), which cannot be stored'
    return None
