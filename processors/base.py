"""The processor interface: the only thing the instance runtime knows about prediction code.

Lifecycle, in order:

1. The runtime builds the processor (no arguments) in each worker process.
2. ``load(model_entry, model_config)`` runs once per worker process before the instance
   reports ready. ``model_entry`` is the local path of the model (file or directory, "" when
   the service has none); ``model_config`` is the description's ``model_config`` as text.
   An exception here fails the instance, and its message is the reason `eascmd w` shows.
3. ``process(body, ctx)`` runs for each request on one of the worker threads and returns
   ``(response body, status)``; status 0 means 200. An exception answers that request 400
   with the message as the body and leaves the instance running. A third item, a mapping of
   response headers, may follow the status where a wire format needs one (the Open Inference
   Protocol's ``Inference-Header-Content-Length``).
4. ``process_batch(bodies, ctxs)``, when the processor has it, runs a whole batch when
   ``rpc.batching`` is on: one answer per request, in order, each what ``process`` gives it
   alone, so one bad request fails only itself (tests/processors/contract.py checks that). An
   exception fails every request of the batch. With ``rpc.batching`` on, a processor without
   it is refused at instance start.
5. ``v2_metadata()``, when the processor has it and it returns a document rather than None,
   says that the processor speaks the Open Inference Protocol (KServe v2): the runtime then
   answers ``/v2/models/{service}`` with that metadata and hands ``…/infer`` calls to
   ``process`` / ``process_batch`` with ``ctx.path`` unchanged (``processors.wire.v2``).

A processor carries no transport code: no sockets, no HTTP, no threads of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable


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


BatchMethod = Callable[[Sequence[bytes], Sequence[RequestContext]], Sequence[object]]


def batch_method(processor: object) -> BatchMethod | None:
    """The processor's ``process_batch``, or None when it cannot run batches."""
    method = getattr(processor, "process_batch", None)
    return method if callable(method) else None


def v2_metadata(processor: object) -> dict[str, Any] | None:
    """The processor's Open Inference Protocol metadata, or None when it does not speak it."""
    method = getattr(processor, "v2_metadata", None)
    if not callable(method):
        return None
    document = method()
    return document if isinstance(document, dict) else None


class ProcessorLoadError(Exception):
    """The processor could not load its model; the message says why."""


class Reply(NamedTuple):
    """One answer as the runtime sends it."""

    body: bytes
    status: int
    headers: tuple[tuple[str, str], ...] = ()


def normalize_result(result: object) -> tuple[bytes, int]:
    """:func:`normalize_reply` without the headers."""
    reply = normalize_reply(result)
    return reply.body, reply.status


def normalize_reply(result: object) -> Reply:
    """Accept what processors return in practice: ``(data, status)``, ``(data, status,
    headers)`` or just ``data``.

    ``data`` may be bytes, bytearray or str; status 0 (the PAI-EAS convention) becomes 200.
    A status that cannot end an HTTP call — informational 1xx (the caller would wait for a
    final answer that never comes), or 204/304 with a body (which such an answer cannot
    carry) — becomes 500 with a message naming it.
    """
    if type(result) is tuple and len(result) == 2:
        # The usual answer, ``(bytes, 200)``, needs none of the checks below.
        data, status = result
        if type(data) is bytes and (status == 200 or status == 0) and type(status) is int:
            return Reply(data, 200)
    status = 200
    data = result
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(result, tuple):
        if len(result) == 3:
            data, status, extra = result
            if not isinstance(extra, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
            ):
                raise TypeError("process() headers must be a mapping of str to str")
            headers = tuple(extra.items())
        elif len(result) == 2:
            data, status = result
        else:
            raise TypeError(
                f"process() must return (data, status) or (data, status, headers), "
                f"got a {len(result)}-tuple"
            )
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
        return Reply(f"processor returned status {status}, which cannot end a call".encode(), 500)
    if status in (204, 304) and body:
        message = f"processor returned status {status} with a {len(body)}-byte body"
        return Reply(f"{message}; a {status} answer has no body".encode(), 500)
    return Reply(body, status, headers)
