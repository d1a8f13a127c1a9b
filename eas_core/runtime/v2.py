"""The Open Inference Protocol's endpoints on an instance (SPEC §16; the codec is
``processors.wire.v2``).

    GET  /v2                                      server metadata
    GET  /v2/health/live | /v2/health/ready       200, or 400 while not ready (no token)
    GET  /v2/models/{service}[/versions/{v}]      model metadata          (token)
    GET  /v2/models/{service}[/versions/{v}]/ready                        (token)
    POST /v2/models/{service}[/versions/{v}]/infer  through admission, deadline and batcher

``{service}`` is the model name a Triton or KServe client uses, ``{v}`` the service version
this instance runs. Every answer but a success is ``{"error": "..."}``, whoever refused the
call (the token check, the queue, the deadline, the processor).
"""

from __future__ import annotations

import json
from typing import Any

from eas_core import __version__
from eas_core.http.server import Response
from eas_core.spec.status import NOT_FOUND
from processors.wire import v2paths as v2

JSON = "application/json"
BAD_REQUEST = 400
METHOD_NOT_ALLOWED = 405
EXTENSIONS = ["binary_tensor_data"]


def document(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode(), JSON)


def error(status: int, message: str) -> Response:
    return Response(status, v2.error_body(message), JSON)


def server_metadata() -> Response:
    return document(200, {"name": "openeas", "version": __version__, "extensions": EXTENSIONS})


def health(path: str, ready: bool) -> Response | None:
    """The answer to a health path (a boolean by status, as the protocol says), or None."""
    if path == "/v2/health/live":
        return document(200, {"live": True})
    if path == "/v2/health/ready":
        return document(200 if ready else BAD_REQUEST, {"ready": ready})
    return None


def model_metadata(service: str, version: int, meta: dict[str, Any]) -> Response:
    return document(200, {"name": service, "versions": [str(version)], **meta})


def model_ready(service: str, ready: bool) -> Response:
    return document(200 if ready else BAD_REQUEST, {"name": service, "ready": ready})


def check_route(found: v2.Route | None, service: str, version: int) -> Response | None:
    """Refuse a path naming no model route, another model, or another version."""
    if found is None:
        return error(NOT_FOUND, "no such path in the Open Inference Protocol")
    if found.model != service:
        return error(
            NOT_FOUND, f"model {found.model!r} not found (this instance serves {service!r})"
        )
    if found.version is not None and found.version != str(version):
        return error(
            NOT_FOUND,
            f"model {service!r} has no version {found.version!r} here (this instance serves "
            f"version {version})",
        )
    return None


def as_error(response: Response) -> Response:
    """Any refusal as the protocol's ``{"error": ...}``; answers already JSON pass as they are."""
    if response.status == 200 or response.content_type == JSON:
        return response
    if any(k.lower() == "content-type" and v.startswith(JSON) for k, v in response.headers):
        return response
    message = response.body.decode("utf-8", errors="replace")
    if message.startswith("{"):
        try:
            found = json.loads(message)
        except ValueError:
            found = None
        if isinstance(found, dict) and isinstance(found.get("error"), str):
            message = found["error"]
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
    return Response(response.status, v2.error_body(message), JSON, headers, response.close)
