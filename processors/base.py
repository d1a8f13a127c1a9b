"""The processor interface: the only thing the instance runtime knows about prediction code.

Lifecycle, in order:

1. The runtime builds the processor (no arguments) in each worker process.
2. ``load(model_entry, model_config)`` runs once per worker process before the instance
   reports ready. ``model_entry`` is the local path of the model (file or directory, "" when
   the service has none); ``model_config`` is the description's ``model_config`` as text.
   An exception here fails the instance, and its message is the reason `eascmd w` shows.
3. ``process(body, ctx)`` runs for each request on one of the worker threads and returns
   ``(response body, status)``; status 0 means 200. An exception answers that request 400
   with the message as the body and leaves the instance running.
4. A processor may also offer ``process_batch(bodies, ctxs)``: one answer per request, each
   what ``process`` gives it alone (tests/processors/contract.py checks that). The runtime
   calls ``process`` only: it does not group requests (``rpc.batching`` is refused).

A processor carries no transport code: no sockets, no HTTP, no threads of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a processor may want beyond the body: the method, subpath and query of the call."""

    service: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@runtime_checkable
class Processor(Protocol):
    def load(self, model_entry: str, model_config: str) -> None: ...

    def process(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]: ...


class ProcessorLoadError(Exception):
    """The processor could not load its model; the message says why."""


def normalize_result(result: object) -> tuple[bytes, int]:
    """Accept what processors return in practice: ``(data, status)`` or just ``data``.

    ``data`` may be bytes, bytearray or str; status 0 (the PAI-EAS convention) becomes 200.
    A status that cannot end an HTTP call — informational 1xx (the caller would wait for a
    final answer that never comes), or 204/304 with a body (which such an answer cannot
    carry) — becomes 500 with a message naming it.
    """
    status = 200
    data = result
    if isinstance(result, tuple):
        if len(result) != 2:
            raise TypeError(f"process() must return (data, status), got a {len(result)}-tuple")
        data, status = result
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"process() status must be an int, got {type(status).__name__}")
        if status == 0:
            status = 200
        if not 100 <= status <= 999:
            status = 400
    if isinstance(data, str):
        body = data.encode()
    elif isinstance(data, bytes | bytearray | memoryview):
        body = bytes(data)
    elif data is None:
        body = b""
    else:
        raise TypeError(f"process() must return bytes or str, got {type(data).__name__}")
    if status < 200:
        return f"processor returned status {status}, which cannot end a call".encode(), 500
    if status in (204, 304) and body:
        message = f"processor returned status {status} with a {len(body)}-byte body"
        return f"{message}; a {status} answer has no body".encode(), 500
    return body, status
