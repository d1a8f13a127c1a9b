"""The Open Inference Protocol's paths, and its error body: what the instance runtime needs
on every call, without the tensor codec (``processors.wire.v2``) and numpy behind it, so that
an instance whose processor has no tensors does not load them."""

from __future__ import annotations

import json
from dataclasses import dataclass

PREFIX = "/v2"
MODELS = "/v2/models/"


@dataclass(frozen=True)
class Route:
    """A ``/v2/models/{model}[/versions/{version}][/{action}]`` path, split."""

    model: str
    version: str | None
    action: str  # "" (metadata), "ready" or "infer"


def route(path: str) -> Route | None:
    """The parts of a model path, or None when it is not one the protocol defines."""
    if not path.startswith(MODELS):
        return None
    parts = path[len(MODELS) :].split("/")
    version = None
    if len(parts) >= 3 and parts[1] == "versions":
        version = parts[2]
        parts = [parts[0], *parts[3:]]
    if not parts[0] or version == "" or len(parts) > 2:
        return None
    action = parts[1] if len(parts) == 2 else ""
    if action not in ("", "ready", "infer"):
        return None
    return Route(parts[0], version, action)


def is_infer(path: str) -> bool:
    found = route(path)
    return found is not None and found.action == "infer"


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
