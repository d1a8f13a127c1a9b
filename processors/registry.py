"""Processor codes → implementations, as ``"module:Class"`` strings imported only when chosen.

The core never imports a framework it is not serving: a code is resolved in the instance
process that serves it. Built-in codes join this table as their processors land; the
controller refuses any code not listed here, naming it.
"""

from __future__ import annotations

import importlib

from processors.base import Processor

BUILTIN: dict[str, str] = {}

CUSTOM_TYPES_SUPPORTED = ("python",)


def is_known(code: str) -> bool:
    return code in BUILTIN


def available_codes() -> list[str]:
    return sorted(BUILTIN)


def create(code: str) -> Processor:
    try:
        target = BUILTIN[code]
    except KeyError:
        raise KeyError(f"unknown processor code {code!r}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    processor: Processor = cls()
    return processor
