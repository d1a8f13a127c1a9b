"""pydantic's validation errors as ``field.path: message`` lines, in the input's own spelling.

One formatter for everything a person writes and the platform validates: service
descriptions (control API, ``eascmd``), the control API's request parameters, pipeline
declarations. A path spells each field the way the input does (its alias:
``metadata.rpc.max_queue_size``) and list positions in brackets (``rollout.steps[1]``);
pydantic's names for the branches of a union (``function-after[…]``, ``str``) are left out.

A validator that checks several fields, or the elements of one, raises :class:`FieldProblem`
so that each reported path still ends at the exact field.

:func:`near_misses` names the keys of a document that its model does not know but that are
close to a name it does (``metdata: unknown field — did you mean metadata?``): for models
that keep unknown keys, where a typo would otherwise be stored and silently ignored.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

# What pydantic calls the branches of a union it tried; never the name of a field.
_BRANCH_TYPES = frozenset({"str", "int", "float", "bool", "bytes", "none", "list", "dict"})
# pydantic's wording of a few kinds of error, said the way the rest of our messages are.
_MESSAGES = {"missing": "required", "extra_forbidden": "unknown field"}


class FieldProblem(ValueError):
    """Raised by a validator about the fields it checked itself: ``path`` is relative to the
    value validated (``steps[1]``, ``name``), ``more`` adds further ``(path, message)``."""

    def __init__(self, path: str, message: str, *more: tuple[str, str]) -> None:
        super().__init__(message)
        self.problems = [(path, message), *more]

    @classmethod
    def nested(cls, exc: ValidationError) -> FieldProblem:
        """The errors of a model a validator validated itself, reported under the field
        being validated (``store.path`` rather than pydantic's ``store.local.path``)."""
        first, *more = _problems(exc.errors(include_url=False), ())
        return cls(*first, *more)


def field_errors(
    errors: ValidationError | Iterable[Mapping[str, Any]],
    *,
    root: str = "(top level)",
    locations: Collection[str] = (),
) -> list[str]:
    """Each error as ``path: message``, without repeats. ``root`` names a problem with the
    input as a whole; ``locations`` are leading path parts that say where the input came
    from rather than which field it is (FastAPI's ``body``, ``query``, ``path``)."""
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False)
    lines: list[str] = []
    for path, message in _problems(errors, locations):
        line = f"{path or root}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


# How alike an unknown key and a known name must be (difflib's ratio) to be called a typo:
# `metdata`/`metadata` is 0.93, `processor_params`/`processor_path` 0.83 — a key of another
# platform's descriptions, kept as it is.
NEAR_MISS = 0.85


def near_misses(document: Mapping[str, Any], model: type[BaseModel], path: str = "") -> list[str]:
    """Each key of ``document`` that ``model`` does not know and that is spelled almost like
    one of its fields (by alias or name), as ``path: unknown field — did you mean …?``; the
    known keys whose value is a nested model are looked into the same way."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        fields[name] = field.annotation
        if field.alias:
            fields[field.alias] = field.annotation
    spelled = sorted({field.alias or name for name, field in model.model_fields.items()})
    problems: list[str] = []
    for key, value in document.items():
        if not isinstance(key, str):
            continue
        where = _join(path, key)
        if key in fields:
            nested = _model_in(fields[key])
            if nested is not None and isinstance(value, Mapping):
                problems += near_misses(value, nested, where)
            continue
        close = difflib.get_close_matches(key, spelled, n=1, cutoff=NEAR_MISS)
        if close:
            problems.append(f"{where}: unknown field — did you mean {close[0]}?")
    return problems


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: ``Metadata``, or the model of ``Metadata | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _problems(
    errors: Iterable[Mapping[str, Any]], locations: Collection[str]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for error in errors:
        loc = list(error["loc"])
        if loc and loc[0] in locations:
            loc = loc[1:]
        path = _path(loc)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem):
            found += [(_join(path, sub), message) for sub, message in cause.problems]
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            found.append((path, _MESSAGES.get(str(error["type"]), message)))
    return found


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in part and part not in _BRANCH_TYPES:
            out = _join(out, part)
    return out


def _join(path: str, sub: str) -> str:
    if not path or not sub:
        return path or sub
    return path + sub if sub.startswith("[") else f"{path}.{sub}"
