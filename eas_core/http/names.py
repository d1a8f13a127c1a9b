"""What the parser hands over, as handlers want it: header names lower-cased, the method,
the request target split into path and query.

Header names and methods are kept by their bytes on the wire: most requests repeat the same
few, so each is decoded (and lower-cased) once. The caches are bounded, because the names
come from callers.
"""

from __future__ import annotations

import httptools

_NAMES: dict[bytes, str] = {}
_METHODS: dict[bytes, str] = {}
NAMES_KEPT = 512


def header_name(raw: bytes) -> str:
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode("latin-1").lower()
        if len(_NAMES) < NAMES_KEPT:
            _NAMES[raw] = name
    return name


def method_name(raw: bytes) -> str:
    method = _METHODS.get(raw)
    if method is None:
        method = raw.decode("ascii")
        if len(_METHODS) < NAMES_KEPT:
            _METHODS[raw] = method
    return method


def split_target(url: bytes) -> tuple[str, str]:
    """The request target's path and query."""
    if url[:1] == b"/" and b"#" not in url:
        # Origin form, what clients send: split here rather than by the general URL parser
        # (absolute form, fragments), which builds an object per request.
        path, _, query = url.partition(b"?")
        return path.decode("latin-1"), query.decode("latin-1")
    parsed = httptools.parse_url(url)
    return parsed.path.decode("latin-1"), (parsed.query or b"").decode("latin-1")
