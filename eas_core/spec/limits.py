"""Bounds on what a service description may hold, checked before anything is stored.

A description ends up in the database, in the route table every gateway holds, and in the
environment of every instance (``EAS_TOKEN``, ``EAS_MODEL_CONFIG``), where the kernel refuses
NUL bytes and any one variable over 128 KiB. One bad value there used to stop every
instance of every service from starting, so every string has a length bound and no control
characters where they make no sense, and the document as a whole has a size, depth and
breadth bound. Each refusal names the field (``metadata.foo[2]: …``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

KiB = 1024
# The whole description as compact JSON.
MAX_DOCUMENT_BYTES = 256 * KiB
# Nesting of objects and arrays (the description itself is level 1).
MAX_DEPTH = 16
# Keys of one object, items of one array.
MAX_ITEMS = 256
MAX_KEY_CHARS = 128
# Any string anywhere; known fields have tighter bounds (below).
MAX_STRING_CHARS = 64 * KiB
# model_config reaches the processor as the variable EAS_MODEL_CONFIG; the kernel caps one
# variable at 128 KiB (MAX_ARG_STRLEN), so leave room for everything else.
MAX_MODEL_CONFIG_BYTES = 64 * KiB
MAX_TOKEN_CHARS = 256
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 1024  # entries, class names, images
MAX_SHORT_CHARS = 64  # codes, resource groups, regions, CUDA versions
# Integers stored as SQL INTEGER (64-bit) and JSON numbers kept in documents.
MAX_INT = 2**63 - 1
# Version numbers in paths and bodies.
MAX_VERSION = 2**31 - 1

# C0 controls, DEL and C1 controls: nothing a name, path, token or label needs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Free text (model_config, unknown keys' values) may hold tabs and line breaks.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(value: str, *, text: bool = False) -> str | None:
    """A description of the first control character in ``value`` ("U+0000 at offset 3"),
    or None. With ``text``, tabs and line breaks are allowed."""
    found = (_CONTROL_IN_TEXT if text else _CONTROL).search(value)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at offset {found.start()}"


def check_plain(value: str) -> str:
    """A pydantic validator: no control characters at all."""
    where = control_character(value)
    if where is not None:
        raise ValueError(f"must not contain control characters (found {where})")
    return value


def check_text(value: str) -> str:
    """A pydantic validator for free text: tabs and line breaks are allowed."""
    where = control_character(value, text=True)
    if where is not None:
        raise ValueError(f"must not contain control characters (found {where})")
    return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def document_problems(document: Any, *, what: str = "description") -> list[str]:
    """Every bound the decoded JSON ``document`` breaks, each naming its field."""
    problems: list[str] = []

    def visit(value: Any, path: str, depth: int) -> None:
        where = path or what
        if depth > MAX_DEPTH:
            problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
            return
        if isinstance(value, dict):
            if len(value) > MAX_ITEMS:
                problems.append(f"{where}: {len(value)} keys, more than {MAX_ITEMS}")
                return
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(f"{where}: keys must be strings")
                    continue
                shown = key[:40] + "…" if len(key) > 40 else key
                if len(key) > MAX_KEY_CHARS:
                    problems.append(
                        f"{_join(path, shown)}: key longer than {MAX_KEY_CHARS} characters"
                    )
                    continue
                bad = control_character(key)
                if bad is not None or not key:
                    problems.append(
                        f"{_join(path, repr(key))}: keys must be non-empty with no control "
                        f"characters" + (f" (found {bad})" if bad else "")
                    )
                    continue
                visit(item, _join(path, key), depth + 1)
        elif isinstance(value, list):
            if len(value) > MAX_ITEMS:
                problems.append(f"{where}: {len(value)} items, more than {MAX_ITEMS}")
                return
            for index, item in enumerate(value):
                visit(item, _join(path, index), depth + 1)
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                problems.append(f"{where}: {len(value)} characters, more than {MAX_STRING_CHARS}")
            elif (bad := control_character(value, text=True)) is not None:
                problems.append(f"{where}: must not contain control characters (found {bad})")
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not -MAX_INT - 1 <= value <= MAX_INT:
                problems.append(f"{where}: integer out of range (at most 2^63-1 in magnitude)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(f"{where}: must be a finite number, not {value}")
        else:
            problems.append(f"{where}: not a JSON value ({type(value).__name__})")

    visit(document, "", 1)
    if not problems:
        size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_DOCUMENT_BYTES:
            problems.append(
                f"{what}: {size} bytes as JSON, over the limit of {MAX_DOCUMENT_BYTES} bytes"
            )
    return problems


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(body: bytes | str) -> Any:
    """Decode JSON strictly: no NaN/Infinity, bounded nesting; ValueError says what is wrong."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested too deeply (descriptions allow {MAX_DEPTH} levels)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
