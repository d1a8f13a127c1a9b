"""The instance's request handler: built-in endpoints, authentication, admission, deadline.

One ``RuntimeApp`` per worker process. The predict path is: authenticate → refuse at once
while every worker thread is stuck (503, see ``occupancy``) → admit (450) → run
``processor.process`` on a worker thread under the deadline (408) → answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from eas_core.auth.tokens import is_authorized_request
from eas_core.config import RuntimeSettings
from eas_core.http.server import Request, Response, text
from eas_core.runtime.admission import Admission
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
from processors.base import Processor, RequestContext, normalize_result

log = logging.getLogger(__name__)


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
        self.deadline = settings.keepalive_ms / 1000
        self.admission = Admission(threads, settings.max_queue_size)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="eas-worker")
        self.occupancy = occupancy or Occupancy(threads, settings.keepalive_ms)
        self.metrics = RuntimeMetrics(
            self.service,
            threads,
            queued=lambda: self.admission.in_flight,
            busy=lambda: self.occupancy.busy,
        )
        self.ready = False

    async def handle(self, request: Request) -> Response:
        if request.path.startswith(BUILTIN_PREFIX):
            return self.builtin(request.path[len(BUILTIN_PREFIX) :])
        if not is_authorized_request(
            self.token,
            request.headers,
            path=request.path,
            body=request.body,
            max_skew=self.settings.signature_max_skew,
        ):
            return text(UNAUTHORIZED, "invalid or missing token")
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
        started = time.monotonic()
        ctx = RequestContext(
            self.service, request.path, request.query, request.headers, request.method
        )
        job = asyncio.wrap_future(self.executor.submit(self.run_processor, request.body, ctx))
        # The slot is freed on the loop thread when the processor call really ends.
        job.add_done_callback(self._left)
        try:
            # shield: a timed-out call keeps its slot until the processor really returns.
            async with asyncio.timeout(self.deadline):
                body, status = await asyncio.shield(job)
        except TimeoutError:
            self.metrics.answered(REQUEST_TIMEOUT, time.monotonic() - started)
            return text(
                REQUEST_TIMEOUT, f"processing exceeded {self.settings.keepalive_ms} ms", close=True
            )
        self.metrics.answered(status, time.monotonic() - started)
        return Response(status, body)

    def _left(self, job: asyncio.Future[tuple[bytes, int]]) -> None:
        self.admission.leave()

    def run_processor(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]:
        self.occupancy.enter()
        try:
            return normalize_result(self.processor.process(body, ctx))
        except Exception as exc:  # a processor exception answers that request only
            log.warning("processor raised on %s: %r", ctx.path, exc)
            return f"{type(exc).__name__}: {exc}".encode(), 400
        finally:
            self.occupancy.leave()

    def builtin(self, name: str) -> Response:
        if name == "ping":
            return text(200, "pong")
        if name == "ready":
            return self.readiness()
        if name == "metrics":
            return Response(200, self.metrics.render(), CONTENT_TYPE)
        return text(NOT_FOUND, f"no built-in endpoint {name!r}")

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
        self.executor.shutdown(wait=False, cancel_futures=True)
