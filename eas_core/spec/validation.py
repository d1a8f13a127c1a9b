"""pydantic's validation errors as ``field.path: message`` lines, in the input's own spelling.

One formatter for everything a person writes and the platform validates: service
descriptions (control API, ``eascmd``), the control API's request parameters, pipeline
declarations. A path spells each field the way the input does (its alias:
``metadata.rpc.max_queue_size``) and list positions in brackets (``rollout.steps[1]``);
pydantic's names for the branches of a union (``function-after[…]``, ``str``) are left out.

A validator that checks several fields, or the elements of one, raises :class:`FieldProblem`
so that each reported path still ends at the exact field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

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
