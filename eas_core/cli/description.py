"""Service descriptions as eascmd reads them: a JSON file, and `-DKEY=VALUE` changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eas_core.errors import BadRequest, EASError, InvalidDescription

LOCAL_PATH_FIELDS = ("model_path", "processor_path")


def read_description(path: Path) -> dict[str, Any]:
    """Load a description file; relative local artefact paths are taken from the current
    directory, as `eascmd test` does, and sent absolute."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise EASError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidDescription([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(document, dict):
        raise InvalidDescription([f"{path}: the description must be a JSON object"])
    for field in LOCAL_PATH_FIELDS:
        value = document.get(field)
        if isinstance(value, str) and "://" not in value and Path(value).expanduser().exists():
            document[field] = str(Path(value).expanduser().resolve())
    return document


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """`metadata.instance=3` → (["metadata", "instance"], 3). `rpc.*` keys stay one key."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise BadRequest(f"-D {text!r}: expected KEY=VALUE, e.g. -Dmetadata.instance=2")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    head, _, rest = key.partition(".")
    return ([head, rest] if rest else [head]), value


def apply_assignments(change: dict[str, Any], assignments: tuple[str, ...]) -> dict[str, Any]:
    """``change`` with each `-DKEY=VALUE` set in it (a dotted key sets a nested one)."""
    for text in assignments:
        path, value = parse_assignment(text)
        if len(path) == 2:
            change.setdefault(path[0], {})[path[1]] = value
        else:
            change[path[0]] = value
    return change
