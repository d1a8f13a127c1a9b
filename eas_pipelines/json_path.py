"""JSON paths into an answer (``$[0].p_1``, ``$.outputs[0].scores[-1]``), through jsonpath-ng.

Used where a declaration is validated (a path that cannot be compiled is an error in the
file) and where a smoke test judges an answer.
"""

from __future__ import annotations

from typing import Any, Final

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as jsonpath_parse

MISSING: Final = object()  # what ``lookup`` finds at a path that holds nothing


def parse_json_path(path: str) -> JSONPath:
    """Compile a JSON path; a ValueError names what is wrong."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: a JSON path starts with '$', e.g. '$[0].p_1'")
    try:
        return jsonpath_parse(path)
    except Exception as exc:  # jsonpath-ng raises its own lexer/parser errors
        raise ValueError(f"{path!r}: not a JSON path ({exc})") from None


def lookup(document: Any, path: str) -> Any:
    """The first value at ``path``, or ``MISSING``."""
    found = parse_json_path(path).find(document)
    return found[0].value if found else MISSING
