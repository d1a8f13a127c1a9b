"""Shadow traffic: copy a share of a service's calls to a candidate service, keep the pairs.

The caller's call is answered from the live service as always; only then is a copy sent to
the candidate (the route's ``shadow``), as a task the caller never waits for. Which calls are
copied is decided by a running credit, not a coin: with 20 % every fifth call is, so the
share over any run of calls is exact to within one call.

Mirrors are bounded, because a slow or hung candidate must not take the gateway's memory or
its connections with it: at most ``max_in_flight`` copies at once, holding at most
``max_bytes`` of request and live-answer bodies, each given ``timeout`` seconds. A copy over
a bound is not sent, and counted as dropped with why (``in_flight``, ``bytes``; ``no_target``
when the candidate has no ready instance).

Each answered copy makes a pair (live answer, candidate's answer, both latencies and statuses)
in a ring of the last ``ring_size`` per service, read by the controller through
``GET /api/internal/shadow/{service}``. Pairs stay in the gateway's memory rather than being
posted to the controller: the gateway is on the data path and must not depend on the
controller being up or quick, the ring is a bounded recent sample (not a record to keep), and
the controller asks each gateway when someone reads the report, which is rare next to calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from eas_core.gateway.metrics import GatewayMetrics
from eas_core.gateway.proxy import encode_head
from eas_core.gateway.table import CompiledRoute, RouteTableHolder
from eas_core.http.server import Request, Response
from eas_core.http.upstream import UpstreamError, UpstreamPool
from eas_core.spec.shadow import ShadowCounters, ShadowPair, ShadowRecord

log = logging.getLogger(__name__)


class ShadowLog:
    """One service's mirror since its setting was made: counters and the latest pairs."""

    __slots__ = ("counters", "credit", "pairs", "since")

    def __init__(self, since: int, ring_size: int) -> None:
        self.since = since
        self.credit = 0.0
        self.counters = ShadowCounters()
        self.pairs: deque[ShadowPair] = deque(maxlen=ring_size)

    def record(self, limit: int) -> ShadowRecord:
        pairs = list(self.pairs)[-limit:] if limit > 0 else []
        return ShadowRecord(
            since=self.since, counters=self.counters.model_copy(deep=True), pairs=pairs
        )


class Mirror:
    def __init__(
        self,
        pool: UpstreamPool,
        table: RouteTableHolder,
        metrics: GatewayMetrics,
        *,
        max_in_flight: int,
        max_bytes: int,
        timeout: float,
        ring_size: int,
        body_bytes: int,
    ) -> None:
        self.pool = pool
        self.table = table
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.ring_size = ring_size
        self.body_bytes = body_bytes
        self.in_flight = 0
        self.held_bytes = 0
        self.logs: dict[str, ShadowLog] = {}
        # Tasks are referenced until done: the event loop keeps only weak references.
        self.tasks: set[asyncio.Task[None]] = set()

    def after_answer(
        self,
        route: CompiledRoute,
        request: Request,
        subpath: str,
        prefix: str,
        live: Response,
        live_seconds: float,
    ) -> None:
        """Called with the live answer about to be written: maybe start a copy of the call.
        Returns at once; the copy runs once the caller's handler has returned."""
        shadow = route.route.shadow
        if shadow is None or shadow.percent <= 0:
            return
        entry = self.logs.get(route.name)
        if entry is None or entry.since != shadow.since:
            entry = self.logs[route.name] = ShadowLog(shadow.since, self.ring_size)
        entry.credit += shadow.percent
        if entry.credit < 100.0:
            return
        entry.credit -= 100.0
        target = self.table.get(shadow.target)
        size = len(request.body) + len(live.body)
        if target is None or not len(target.balancer):
            self._drop(route.name, entry, "no_target")
        elif self.in_flight >= self.max_in_flight:
            self._drop(route.name, entry, "in_flight")
        elif self.held_bytes + size > self.max_bytes:
            self._drop(route.name, entry, "bytes")
        else:
            self.in_flight += 1
            self.held_bytes += size
            entry.counters.mirrored += 1
            task = asyncio.get_running_loop().create_task(
                self._copy(
                    route.name, entry, target, request, subpath, prefix, live, live_seconds, size
                )
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _drop(self, service: str, entry: ShadowLog, reason: str) -> None:
        entry.counters.dropped[reason] = entry.counters.dropped.get(reason, 0) + 1
        self.metrics.mirrored(service, f"dropped_{reason}")

    async def _copy(
        self,
        service: str,
        entry: ShadowLog,
        target: CompiledRoute,
        request: Request,
        subpath: str,
        prefix: str,
        live: Response,
        live_seconds: float,
        size: int,
    ) -> None:
        status, body, error = 0, b"", ""
        start = time.perf_counter()
        try:
            picked = target.balancer.pick(set())
            if picked is None:
                raise UpstreamError("has no ready instance", reason="connect", sent=False)
            _, upstream = picked
            head = encode_head(request, target, subpath, upstream.host, upstream.port, prefix)
            async with asyncio.timeout(self.timeout):
                answer = await self.pool.send(
                    upstream.host, upstream.port, head, request.body, self.timeout
                )
            status, body = answer.status, answer.body
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except (UpstreamError, OSError) as exc:
            error = str(exc)
        except Exception as exc:  # a copy must never take the gateway's loop down
            log.exception("mirroring a call of %s to %s failed", service, target.name)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.in_flight -= 1
            self.held_bytes -= size
        shadow_seconds = time.perf_counter() - start
        same = not error and status == live.status and body == live.body
        if error:
            entry.counters.failed += 1
            outcome = "failed"
        else:
            entry.counters.compared += 1
            if same:
                entry.counters.agreed += 1
            else:
                entry.counters.disagreed += 1
            outcome = "agreed" if same else "disagreed"
        self.metrics.mirrored(service, outcome)
        entry.pairs.append(
            ShadowPair(
                time=time.time(),
                live_status=live.status,
                shadow_status=status,
                live_ms=round(live_seconds * 1000, 3),
                shadow_ms=round(shadow_seconds * 1000, 3),
                same=same,
                live_body=self._text(live.body),
                shadow_body=self._text(body),
                live_truncated=len(live.body) > self.body_bytes,
                shadow_truncated=len(body) > self.body_bytes,
                shadow_error=error,
            )
        )

    def _text(self, body: bytes) -> str:
        return body[: self.body_bytes].decode("utf-8", errors="replace")

    def record(self, service: str, limit: int) -> ShadowRecord:
        """What was recorded under the setting in force; with mirroring off, under the last
        one. Before the first call under a new setting: its ``since`` and no counts."""
        route = self.table.get(service)
        shadow = route.route.shadow if route is not None else None
        entry = self.logs.get(service)
        if shadow is not None and (entry is None or entry.since != shadow.since):
            return ShadowRecord(since=shadow.since, active=True)
        if entry is None:
            return ShadowRecord()
        record = entry.record(limit)
        record.active = shadow is not None
        return record

    def forget_others(self, services: set[str]) -> None:
        """Drop the logs of services no longer in the route table."""
        for name in list(self.logs):
            if name not in services:
                del self.logs[name]

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
