"""How the control API answers errors: one body shape, ``{"code": kind, "message": text}``,
for the platform's errors, for malformed requests FastAPI itself refuses, and for unknown
routes and methods; declared in the OpenAPI document for every route."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from eas_core.errors import EASError
from eas_core.spec.validation import field_errors

# Where FastAPI found a request value; not part of the field's name.
REQUEST_PARTS = ("body", "query", "path", "header", "cookie")

_KIND_OF_STATUS = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "BadRequest",
    409: "Conflict",
    413: "PayloadTooLarge",
    503: "Unavailable",
}


class ErrorBody(BaseModel):
    code: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": kind}
    for status, kind in _KIND_OF_STATUS.items()
    if status != 405
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EASError)
    async def eas_error(request: Request, exc: EASError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = field_errors(exc.errors(), root="body", locations=REQUEST_PARTS)
        return JSONResponse({"code": "BadRequest", "message": "; ".join(fields)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = _KIND_OF_STATUS.get(exc.status_code, "EASError")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        return JSONResponse(
            {"code": kind, "message": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
