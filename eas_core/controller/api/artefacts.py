"""/api/v1/artefacts: `eascmd upload` stores a file and gets the URI to deploy from."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from eas_core.artefacts import ArtefactStore, safe_filename
from eas_core.controller.api.auth import authenticate
from eas_core.errors import BadRequest, PayloadTooLarge

router = APIRouter(prefix="/api/v1/artefacts", dependencies=[Depends(authenticate)])


@router.post("", status_code=201)
async def upload(request: Request, filename: str) -> dict[str, Any]:
    store: ArtefactStore = request.app.state.store
    limit: int = request.app.state.settings.max_artefact_bytes
    name = safe_filename(filename)
    if not name:
        raise BadRequest(f"filename: {filename!r} is not a usable file name")
    with tempfile.TemporaryDirectory(dir=request.app.state.settings.data_dir) as tmp:
        path = Path(tmp) / name
        size = 0
        with path.open("wb") as f:
            # The body was read once for the signature check; it is cached on the request.
            body = await request.body()
            size = len(body)
            if size > limit:
                raise PayloadTooLarge(f"file larger than {limit} bytes")
            f.write(body)
        ref = await run_in_threadpool(store.put_file, path, name)
    return {"uri": ref.uri, "digest": ref.digest, "filename": ref.filename, "size": ref.size}
