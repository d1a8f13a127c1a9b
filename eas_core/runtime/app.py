"""The instance's request handler: built-in endpoints, authentication, admission, deadline.

One ``RuntimeApp`` per worker process. The predict path is: authenticate → refuse at once
while every worker thread is stuck (503, see ``occupancy``) → admit (450) → run the processor
on a worker thread — ``process`` for the one request, or with ``rpc.batching`` its place in
a batch (``batcher``) — under the deadline (408) → answer. The Open Inference Protocol's
``/v2/…`` paths (``v2``) take the same path for their ``infer`` calls.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import Callable

from eas_core.auth.tokens import is_authorized_request
from eas_core.config import RuntimeSettings
from eas_core.http.server import DEFERRED, Request, Responder, Response, text
from eas_core.runtime import v2
from eas_core.runtime.admission import Admission
from eas_core.runtime.batcher import Batcher
from eas_core.runtime.handoff import WorkerThreads
from eas_core.runtime.inline import InlinePolicy, declared_inline_safe
from eas_core.runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from eas_core.runtime.occupancy import Occupancy
from eas_core.spec.paths import BUILTIN_PREFIX, STUCK_SECONDS_HEADER
from eas_core.spec.status import (
    NOT_FOUND,
    QUEUE_FULL,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
)
from processors.base import (
    Processor,
    Reply,
    RequestContext,
    batch_method,
    normalize_reply,
    v2_metadata,
)
from processors.wire.v2paths import PREFIX as V2_PREFIX
from processors.wire.v2paths import route as v2_route

log = logging.getLogger(__name__)


class BatchingUnsupported(Exception):
    """``rpc.batching`` is on and the processor has no ``process_batch``."""


class RuntimeApp:
    def __init__(
        self,
        processor: Processor,
        settings: RuntimeSettings,
        threads: int,
        occupancy: Occupancy | None = None,
    ) -> None:
        self.processor = processor
        self.settings = settings
        self.service = settings.service_name
        self.token = settings.token
        self.token_bytes = None if self.token is None else self.token.encode()
        self.deadline = settings.keepalive_ms / 1000
        self.threads = WorkerThreads(threads, name="eas-worker")
        self.occupancy = occupancy or Occupancy(threads, settings.keepalive_ms)
        self.batcher: Batcher | None = None
        # A batching worker thread holds up to a whole batch at once: the queue
        # (rpc.max_queue_size) is what waits beyond that.
        running = threads * settings.max_batch_size if settings.batching else threads
        self.admission = Admission(running, settings.max_queue_size)
        self.metrics = RuntimeMetrics(
            self.service,
            threads,
            version=settings.version,
            instance=settings.instance_id,
            queued=lambda: self.admission.in_flight,
            busy=lambda: self.occupancy.busy,
        )
        if settings.batching:
            method = batch_method(processor)
            if method is None:
                raise BatchingUnsupported(refusal(processor))
            self.batcher = Batcher(
                method,
                self.threads,
                self.occupancy,
                max_size=settings.max_batch_size,
                timeout_ms=settings.max_batch_timeout_ms,
                observe=self.metrics.batched,
            )
        # Batches always go to the threads: a batch is the slow, amortised path by design.
        self.inline = InlinePolicy(declared_inline_safe(processor) and self.batcher is None)
        # Only a processor that may move onto the loop pays for timing its threaded calls.
        self.on_thread = self.run_timed if self.inline.allowed else self.run_processor
        self.ready = False

    def immediate(self, request: Request, responder: Responder) -> Response | None:
        """The answer when it needs no waiting — a built-in endpoint, or a predict call while
        the processor runs on the loop — else None, and ``handle`` answers (the server's
        fast path: see ``eas_core.http.server``)."""
        path = request.path
        if path.startswith(BUILTIN_PREFIX):
            return self.builtin(path[len(BUILTIN_PREFIX) :])
        if path.startswith(V2_PREFIX):
            return None
        if not self.is_authorized(request):
            return text(UNAUTHORIZED, "invalid or missing token")
        # On a worker thread the call is answered from its own callback: no task per call.
        answer = self.admit(request, functools.partial(responder.respond, request))
        return DEFERRED if answer is None else answer

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith(BUILTIN_PREFIX):
            return self.builtin(path[len(BUILTIN_PREFIX) :])
        if path == V2_PREFIX or path.startswith(V2_PREFIX + "/"):
            return v2.as_error(await self.v2(request))
        if not self.is_authorized(request):
            return text(UNAUTHORIZED, "invalid or missing token")
        return await self.predict(request)

    def is_authorized(self, request: Request) -> bool:
        presented = request.headers.get("authorization")
        # The plain token, as most callers send it, compared at once (in constant time);
        # anything else — a signature, a wrong token — takes the general check.
        if (
            presented is not None
            and self.token_bytes is not None
            and hmac.compare_digest(presented.encode(), self.token_bytes)
        ):
            return True
        return is_authorized_request(
            self.token,
            request.headers,
            path=request.path,
            body=request.body,
            max_skew=self.settings.signature_max_skew,
        )

    def refusal(self) -> Response | None:
        """Why a predict call cannot be admitted now, or None when it is (a slot taken)."""
        if not self.ready:
            return text(SERVICE_UNAVAILABLE, "instance is not ready")
        stuck = self.occupancy.stuck(here_only=True)
        if stuck is not None:
            # It would only queue behind calls already past the deadline: another instance
            # (the gateway retries 503) answers sooner. A sibling worker process that is
            # stuck makes the instance unready, but this process still answers.
            self.metrics.answered(SERVICE_UNAVAILABLE, 0.0)
            return text(SERVICE_UNAVAILABLE, f"instance cannot answer now: {stuck.reason}")
        if not self.admission.try_enter():
            self.metrics.answered(QUEUE_FULL, 0.0)
            return text(QUEUE_FULL, "request queue is full", close=True)
        return None

    async def predict(self, request: Request) -> Response:
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        answer = self.admit(request, functools.partial(_resolve, waiter))
        return await waiter if answer is None else answer

    def admit(self, request: Request, deliver: Deliver) -> Response | None:
        """An authorized predict call: its answer now (refused, or run on the loop), or None
        when it went to a worker thread and ``deliver`` will get the answer."""
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        started = time.monotonic()
        if self.inline.inline:
            return self.predict_inline(request, started)
        self.start_call(request, started, deliver)
        return None

    def start_call(self, request: Request, started: float, deliver: Deliver) -> None:
        """Run an admitted call on a worker thread — alone, or in a batch — and ``deliver``
        its answer on the loop: the processor's, or 408 at the deadline while the call runs
        on. Its admission slot is freed when the call really ends, not at the deadline."""
        ctx = RequestContext(
            self.service, request.path, request.query, request.headers, request.method
        )
        job: asyncio.Future[Reply]
        if self.batcher is not None:
            job = self.batcher.submit(request.body, ctx, started + self.deadline)
            job.add_done_callback(self._left)
        else:
            job = self.threads.submit(self.on_thread, request.body, ctx, ended=self.admission.leave)
        job.add_done_callback(_PendingCall(self, len(request.body), started, deliver, job).settle)

    def predict_inline(self, request: Request, started: float) -> Response:
        """Run the call on the loop itself (``inline``): no hand-off, no wake-ups. Its slot
        was taken (``refusal``)."""
        ctx = RequestContext(
            self.service, request.path, request.query, request.headers, request.method
        )
        try:
            reply = self.call_processor(request.body, ctx)
        finally:
            self.admission.leave()
            elapsed = time.monotonic() - started
            self.inline.observe(elapsed, inline=True)
        if elapsed > self.deadline:  # the same answer as a call that overran on a thread
            self.metrics.answered(REQUEST_TIMEOUT, elapsed)
            return self.overran()
        return self.answered(reply, elapsed, len(request.body))

    def answered(self, reply: Reply, elapsed: float, received: int) -> Response:
        """The processor's reply as the caller gets it, counted in the answer metrics."""
        self.metrics.answered(reply.status, elapsed, received=received, sent=len(reply.body))
        if reply.headers:
            return Response(reply.status, reply.body, headers=list(reply.headers))
        return Response(reply.status, reply.body)

    def overran(self) -> Response:
        return text(
            REQUEST_TIMEOUT, f"processing exceeded {self.settings.keepalive_ms} ms", close=True
        )

    def _left(self, job: asyncio.Future[Reply]) -> None:
        self.admission.leave()

    def run_timed(self, body: bytes, ctx: RequestContext) -> Reply:
        """``run_processor`` on a worker thread, telling the inline policy how long it took."""
        started = time.monotonic()
        try:
            return self.run_processor(body, ctx)
        finally:
            self.inline.observe(time.monotonic() - started, inline=False)

    def run_processor(self, body: bytes, ctx: RequestContext) -> Reply:
        self.occupancy.enter()
        try:
            return self.call_processor(body, ctx)
        finally:
            self.occupancy.leave()

    def call_processor(self, body: bytes, ctx: RequestContext) -> Reply:
        try:
            return normalize_reply(self.processor.process(body, ctx))
        except Exception as exc:  # a processor exception answers that request only
            log.warning("processor raised on %s: %r", ctx.path, exc)
            return Reply(f"{type(exc).__name__}: {exc}".encode(), 400)

    async def v2(self, request: Request) -> Response:
        path = request.path
        if path == V2_PREFIX:
            return v2.server_metadata()
        health = v2.health(path, self.is_ready())
        if health is not None:
            return health
        found = v2_route(path)
        if found is not None and not self.is_authorized(request):
            return v2.error(UNAUTHORIZED, "invalid or missing token")
        refused = v2.check_route(found, self.service, self.settings.version)
        if refused is not None or found is None:
            return refused or v2.error(NOT_FOUND, "no such path")
        meta = v2_metadata(self.processor)
        if meta is None:
            return v2.error(
                NOT_FOUND,
                f"model {self.service!r} does not speak the Open Inference Protocol (its "
                "processor is not a tensor processor); call /api/predict/"
                f"{self.service} instead",
            )
        wants = "POST" if found.action == "infer" else "GET"
        if request.method != wants and not (wants == "GET" and request.method == "HEAD"):
            return v2.error(v2.METHOD_NOT_ALLOWED, f"{path}: use {wants}, not {request.method}")
        if found.action == "":
            return v2.model_metadata(self.service, self.settings.version, meta)
        if found.action == "ready":
            return v2.model_ready(self.service, self.is_ready())
        return await self.predict(request)

    def builtin(self, name: str) -> Response:
        if name == "ping":
            return text(200, "pong")
        if name == "ready":
            return self.readiness()
        if name == "metrics":
            return Response(200, self.metrics.render(), CONTENT_TYPE)
        return text(NOT_FOUND, f"no built-in endpoint {name!r}")

    def is_ready(self) -> bool:
        return self.ready and self.occupancy.stuck() is None

    def readiness(self) -> Response:
        if not self.ready:
            return text(SERVICE_UNAVAILABLE, "not ready")
        stuck = self.occupancy.stuck()
        if stuck is None:
            return text(200, "ready")
        answer = text(SERVICE_UNAVAILABLE, stuck.reason)
        answer.headers.append((STUCK_SECONDS_HEADER, f"{stuck.seconds:.3f}"))
        return answer

    def close(self) -> None:
        self.threads.shutdown()


Deliver = Callable[[Response], object]


def _resolve(answer: asyncio.Future[Response], response: Response) -> None:
    if not answer.done():  # its waiter may have been cancelled (the server stopping)
        answer.set_result(response)


class _PendingCall:
    """One call on a worker thread, from its start to its caller's answer: the processor's
    reply, or 408 when the deadline comes first (then the reply, later, is dropped)."""

    __slots__ = ("app", "deliver", "received", "started", "timer")

    def __init__(
        self,
        app: RuntimeApp,
        received: int,
        started: float,
        deliver: Deliver,
        job: asyncio.Future[Reply],
    ) -> None:
        self.app = app
        self.received = received
        self.started = started
        self.deliver: Deliver | None = deliver
        self.timer = job.get_loop().call_later(app.deadline, self.expire)

    def expire(self) -> None:
        deliver, self.deliver = self.deliver, None
        if deliver is not None:
            self.app.metrics.answered(REQUEST_TIMEOUT, time.monotonic() - self.started)
            deliver(self.app.overran())

    def settle(self, job: asyncio.Future[Reply]) -> None:
        deliver, self.deliver = self.deliver, None
        if deliver is None:  # answered 408 already
            return
        self.timer.cancel()
        try:
            reply = job.result()
        except BaseException as exc:  # the hand-off itself failed, not the processor
            log.error("a call on a worker thread did not run: %r", exc)
            deliver(text(500, "internal error", close=True))
            return
        deliver(self.app.answered(reply, time.monotonic() - self.started, self.received))


def refusal(processor: object) -> str:
    """Why an instance with ``rpc.batching`` cannot serve ``processor``."""
    kind = type(getattr(processor, "user", processor)).__name__
    return (
        f"metadata.rpc.batching: {kind} cannot run batches: it has no process_batch method "
        "(a Python processor defines process_batch(self, data_list) returning one "
        "(data, status) per request); set rpc.batching to false or add the method"
    )
