"""One error family for the control plane: the control API, the SDK, eascmd and the pipelines.

    EASError                    500  base: status + message, rendered as ``Kind: message``
    ├── InvalidDescription      400  a service description field is wrong (names the field)
    ├── BadRequest              400  any other malformed request
    ├── Unauthorized            401  missing or wrong access key or signature
    ├── NotFound                404  no such service / version / artefact
    ├── Conflict                409  name taken, operation not possible in this state
    ├── PayloadTooLarge         413  body or artefact over the configured limit
    ├── ArtefactError           400  an artefact cannot be fetched or unpacked safely
    └── Unavailable             503  the controller cannot take the call now

The control API maps the family once (``controller/api/errors.py``): HTTP status from
``status``, body ``{"code": kind, "message": message}``; the SDK rebuilds the error from that
body (:func:`from_response`); eascmd prints ``Kind: message`` and exits 1. The data path (the
gateway and the instances) does not use it: it answers with the platform's status codes and
a plain-text reason (``spec.status``).
"""

from __future__ import annotations


class EASError(Exception):
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, str]:
        return {"code": self.kind, "message": self.message}


class InvalidDescription(EASError):
    """A field of a service description is wrong; ``message`` starts with the field path."""

    status = 400

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class BadRequest(EASError):
    status = 400


class Unauthorized(EASError):
    status = 401


class NotFound(EASError):
    status = 404


class Conflict(EASError):
    status = 409


class PayloadTooLarge(EASError):
    status = 413


class ArtefactError(EASError):
    status = 400


class Unavailable(EASError):
    status = 503


_BY_KIND: dict[str, type[EASError]] = {
    cls.__name__: cls
    for cls in (
        EASError,
        BadRequest,
        Unauthorized,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ArtefactError,
        Unavailable,
    )
}


def from_response(status: int, body: dict[str, object] | None) -> EASError:
    """Rebuild an error from a control-API error body (used by the SDK)."""
    kind = str((body or {}).get("code", ""))
    message = str((body or {}).get("message", f"HTTP {status}"))
    if kind == "InvalidDescription":
        return InvalidDescription(message.split("; "))
    cls = _BY_KIND.get(kind)
    if cls is None:
        cls = next((c for c in _BY_KIND.values() if c.status == status), EASError)
    err = cls(message)
    return err
