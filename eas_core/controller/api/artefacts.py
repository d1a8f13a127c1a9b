"""/api/v1/artefacts: `eascmd upload` stores a file and gets the URI to deploy from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from eas_core.artefacts import ArtefactStore, safe_filename
from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.errors import BadRequest
from eas_core.spec.control import Upload

WRITE_BYTES = 1024 * 1024

router = APIRouter(
    prefix="/api/v1/artefacts", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)


@router.post("", status_code=201)
async def upload(request: Request, filename: Annotated[str, Query(max_length=1024)]) -> Upload:
    """Stream the body into the artefact store: written to a temp file chunk by chunk while
    it is hashed, never held in memory. The signature middleware caps its size and refuses
    its last chunk unless it matches the signed sha256, so a tampered upload is never kept."""
    store: ArtefactStore = request.app.state.store
    name = safe_filename(filename, default="")
    if not name:
        raise BadRequest(f"filename: {filename!r} is not a usable file name")
    upload = await run_in_threadpool(store.receive, name, max_bytes=None)
    with upload:
        pending: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_BYTES:  # a disk write per MiB, off the event loop
                await run_in_threadpool(upload.write, b"".join(pending))
                pending, size = [], 0
        await run_in_threadpool(upload.write, b"".join(pending))
        ref = await run_in_threadpool(upload.commit)
    return Upload(uri=ref.uri, digest=ref.digest, filename=ref.filename, size=ref.size)
