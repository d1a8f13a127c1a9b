"""Calling services: the eas_prediction API, without its protobuf pin, sync and asyncio.

    client = PredictClient("127.0.0.1:8080", "demo")
    client.set_token(token)
    client.init()
    print(client.predict(StringRequest(b"hello")).response_data)

``ENDPOINT_TYPE_GATEWAY`` (the default) sends every call to the gateway. The endpoint may
name several gateways of one installation, comma-separated (``"h1:8080,h2:8080"``) or as a
list: calls go to one of them, and a connection failure or a 502/503/504 from it moves this
call, and the ones after it, to the next;
``ENDPOINT_TYPE_DIRECT`` reads the service's instances from the discovery endpoint, keeps
the list fresh in the background and balances across them itself (weighted round robin),
trying another instance when one fails. Requests are signed with the token exactly as the
official SDK signs them. One client per service, shared: it holds a connection pool.

Plain ``http://`` targets take the HTTP kit's own keep-alive clients (``BlockingPool`` for
threads, ``UpstreamPool`` for asyncio): the request's fixed head is built once per target,
each call adds its length (and signature, whose date is formatted once a second) and goes
out in one write. ``https://`` endpoints go through httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from eas_core.auth.tokens import sign
from eas_core.http.balancer import WeightedRoundRobin
from eas_core.http.client import BlockingPool
from eas_core.http.upstream import UpstreamError, UpstreamPool

ENDPOINT_TYPE_GATEWAY = "DEFAULT"
ENDPOINT_TYPE_DEFAULT = ENDPOINT_TYPE_GATEWAY
ENDPOINT_TYPE_DIRECT = "DIRECT"
DISCOVERY_PATH = "/api/v1/servicediscovery/upstreams/"
REFRESH_SECONDS = 3.0
RETRIED_STATUSES = frozenset({450, 502, 503, 504})
# A pooled connection unused this long is not reused: below the servers' idle timeout
# (60 s by default), so a call never goes out on a connection the server is closing.
REUSE_SECONDS = 30.0
# httpx writes a request's head and its body separately: without TCP_NODELAY the body
# waits for the server's delayed ACK of the head (40 ms on Linux) on every call.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class PredictException(Exception):
    """A call that failed: the HTTP status (or 500 for a transport failure) and the body."""

    def __init__(self, code: int, message: str | bytes) -> None:
        text = message.decode(errors="replace") if isinstance(message, bytes) else message
        super().__init__(f"[{code}] {text}")
        self.code = code
        self.message = text


class Request(Protocol):
    def to_string(self) -> bytes | str: ...

    def parse_response(self, response_data: bytes) -> Any: ...


@dataclass
class StringResponse:
    response_data: bytes

    def to_string(self) -> str:
        return self.response_data.decode(errors="replace")

    def __str__(self) -> str:
        return self.to_string()


class StringRequest:
    """A raw body, sent as it is; the answer comes back as a StringResponse."""

    def __init__(self, request_data: bytes | str = b"") -> None:
        self.request_data = request_data

    def to_string(self) -> bytes | str:
        return self.request_data

    def parse_response(self, response_data: bytes) -> StringResponse:
        return StringResponse(response_data)


def _base_url(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else "http://" + endpoint


@dataclass(frozen=True, slots=True)
class _Target:
    """What stays the same for every call to one base URL."""

    base: str
    url: str  # the whole predict URL (httpx's path)
    host: str
    port: int
    head: bytes  # request line, host and content type: the kit's path (plain http only)
    plain: bool


class _Dates:
    """The current ``Date`` header value, formatted once a second (signatures carry it)."""

    def __init__(self) -> None:
        # One tuple, replaced whole: threads sharing the client never see a mixed pair.
        self.cached = (-1, "")

    def now(self) -> str:
        second = int(time.time())
        cached = self.cached
        if cached[0] == second:
            return cached[1]
        value = formatdate(second, usegmt=True)
        self.cached = (second, value)
        return value


class _Settings:
    """The setters both clients share (the eas_prediction names)."""

    def __init__(self, endpoint: str | list[str] = "", service_name: str = "") -> None:
        self.endpoint = endpoint
        self.service_name = service_name
        self.endpoint_type = ENDPOINT_TYPE_GATEWAY
        self.token = ""
        self.retry_count = 5
        self.max_connection_count = 100
        self.timeout_ms = 5000
        self.content_type = "application/octet-stream"
        self.instances: WeightedRoundRobin[str] = WeightedRoundRobin([])
        self._pick_lock = threading.Lock()  # callers may share one client across threads
        self._known: dict[str, _Target] = {}  # by base URL; emptied when the path changes
        self._dates = _Dates()
        # Which of several gateways calls go to first: the next one once it fails.
        self._gateway = 0

    def set_endpoint(self, endpoint: str | list[str]) -> None:
        self.endpoint = endpoint

    def set_service_name(self, service_name: str) -> None:
        self.service_name = service_name
        self._known = {}

    def set_endpoint_type(self, endpoint_type: str) -> None:
        if endpoint_type not in (ENDPOINT_TYPE_GATEWAY, ENDPOINT_TYPE_DIRECT):
            raise PredictException(500, f"unsupported endpoint type: {endpoint_type}")
        self.endpoint_type = endpoint_type

    def set_token(self, token: str) -> None:
        self.token = token

    def set_retry_count(self, count: int) -> None:
        self.retry_count = max(1, count)

    def set_max_connection_count(self, count: int) -> None:
        self.max_connection_count = count

    def set_timeout(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms

    def set_content_type(self, content_type: str) -> None:
        self.content_type = content_type
        self._known = {}

    # -- shared mechanics --------------------------------------------------------------
    @property
    def is_direct(self) -> bool:
        return self.endpoint_type == ENDPOINT_TYPE_DIRECT

    @property
    def path(self) -> str:
        return f"/api/predict/{self.service_name}"

    def _limits(self) -> httpx.Limits:
        count = self.max_connection_count
        return httpx.Limits(max_connections=count, max_keepalive_connections=count)

    def _transport_options(self) -> dict[str, Any]:
        return {"limits": self._limits(), "socket_options": NODELAY}

    def _gateways(self) -> list[str]:
        """The gateway base URLs the endpoint names (one or several)."""
        named = self.endpoint.split(",") if isinstance(self.endpoint, str) else self.endpoint
        gateways = [_base_url(e) for e in named if e.strip()]
        if not gateways:
            raise PredictException(500, "no endpoint is set: set_endpoint('host:port')")
        return gateways

    def _failed(self, target: _Target) -> None:
        """A gateway that failed a call is tried last from now on (calls already past it
        do not move the choice again)."""
        if self.is_direct:
            return
        with self._pick_lock:
            gateways = self._gateways()
            if gateways[self._gateway % len(gateways)] == target.base:
                self._gateway = (self._gateway + 1) % len(gateways)

    def _discovery_url(self) -> str:
        name = self.service_name.split("/")[0]
        gateways = self._gateways()
        return f"{gateways[self._gateway % len(gateways)]}{DISCOVERY_PATH}{name}"

    def _take_instances(self, document: dict[str, Any]) -> None:
        items = document["endpoints"]["items"]
        self.instances = WeightedRoundRobin(
            [(f"http://{i['ip']}:{i['port']}", int(i["weight"])) for i in items]
        )

    def _targets(self) -> Iterator[_Target]:
        """The target of each attempt: the gateway every time, or instances in WRR order,
        picked one attempt at a time (most calls need only the first)."""
        if not self.is_direct:
            gateways = [self._target(base) for base in self._gateways()]
            first = self._gateway
            # Every gateway gets a try, however few retries are set.
            for attempt in range(max(self.retry_count, len(gateways))):
                yield gateways[(first + attempt) % len(gateways)]
            return
        balancer = self.instances
        for attempt in range(self.retry_count):
            with self._pick_lock:
                picked = balancer.pick()
            if picked is None:
                if attempt == 0:
                    raise PredictException(
                        503, f"no instance of {self.service_name!r} is known yet"
                    )
                return
            yield self._target(picked[1])

    def _target(self, base: str) -> _Target:
        target = self._known.get(base)
        if target is None:
            parts = urlsplit(base)
            host = parts.hostname or ""
            # What the kit's clients do not do is left to httpx: TLS, credentials in the
            # URL, and a proxy the environment names for this host (httpx honours it).
            plain = (
                parts.scheme == "http"
                and parts.username is None
                and not (getproxies().get("http") and not proxy_bypass(host))
            )
            port = parts.port or (80 if parts.scheme == "http" else 443)
            head = (
                f"POST {parts.path}{self.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
                f"content-type: {self.content_type}\r\n"
            ).encode("latin-1")
            target = _Target(base, base + self.path, host, port, head, plain)
            if len(self._known) < 1024:  # bases come from discovery: bounded all the same
                self._known[base] = target
        return target

    @staticmethod
    def _outcome(request: Request, status: int, body: bytes) -> tuple[Any, PredictException | None]:
        """(parsed answer, None), or (None, the failure) when another attempt may succeed;
        raises when it cannot."""
        if status in RETRIED_STATUSES:
            return None, PredictException(status, body)
        if status != 200:
            raise PredictException(status, body)
        return request.parse_response(body), None

    def _body(self, request: Request) -> bytes:
        data = request.to_string()
        return data.encode() if isinstance(data, str) else bytes(data)

    def _signature(self, body: bytes) -> dict[str, str]:
        """The signed headers (Content-Type included), or none without a token."""
        if not self.token:
            return {}
        return sign(
            self.token, body, self.path, content_type=self.content_type, date=self._dates.now()
        )

    def _headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": self.content_type, **self._signature(body)}

    def _encoded(self, target: _Target, body: bytes) -> bytes:
        """The whole request for the kit's clients: fixed head, per-call headers, body."""
        extra = b"".join(
            f"{name}: {value}\r\n".encode("latin-1")
            for name, value in self._signature(body).items()
            if name != "Content-Type"
        )
        return b"%s%scontent-length: %d\r\n\r\n%s" % (target.head, extra, len(body), body)


class PredictClient(_Settings):
    """The synchronous client (a pool of keep-alive connections, thread-safe)."""

    def __init__(self, endpoint: str | list[str] = "", service_name: str = "") -> None:
        super().__init__(endpoint, service_name)
        self._http: httpx.Client | None = None
        self._pool: BlockingPool | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def init(self) -> None:
        self._pool = BlockingPool(max_idle_per_host=self.max_connection_count)
        self._http = httpx.Client(
            timeout=self.timeout_ms / 1000,
            transport=httpx.HTTPTransport(**self._transport_options()),
        )
        if self.is_direct:
            self.sync()
            self._refresher = threading.Thread(target=self._refresh, daemon=True)
            self._refresher.start()

    def sync(self) -> None:
        """Read the service's instances from the discovery endpoint now."""
        assert self._http is not None, "call init() first"
        try:
            answer = self._http.get(self._discovery_url())
        except httpx.HTTPError as exc:
            raise PredictException(500, f"service discovery failed: {exc}") from None
        if answer.status_code != 200:
            raise PredictException(answer.status_code, answer.content)
        self._take_instances(answer.json())

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            with contextlib.suppress(PredictException):
                self.sync()  # keep the last list when discovery hiccups

    def predict(self, request: Request) -> Any:
        assert self._http is not None and self._pool is not None, "call init() first"
        body = self._body(request)
        timeout = self.timeout_ms / 1000
        failure = PredictException(500, "no attempt was made")
        for target in self._targets():
            try:
                if target.plain:
                    answer = self._pool.send(
                        target.host, target.port, self._encoded(target, body), timeout
                    )
                    status, content = answer.status, answer.body
                else:
                    reply = self._http.post(target.url, content=body, headers=self._headers(body))
                    status, content = reply.status_code, reply.content
            except (httpx.HTTPError, UpstreamError) as exc:
                failure = PredictException(500, f"{target.base}: {exc}")
                self._failed(target)
                continue
            except TimeoutError:
                failure = PredictException(
                    500, f"{target.base}: no answer within {self.timeout_ms} ms"
                )
                continue
            result, retry = self._outcome(request, status, content)
            if retry is None:
                return result
            if retry.code in (502, 503):
                self._failed(target)
            failure = retry
        raise failure

    def destroy(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.close()
        if self._pool is not None:
            self._pool.close()


class AsyncPredictClient(_Settings):
    """The asyncio client: ``await client.init()``, ``await client.predict(request)``."""

    def __init__(self, endpoint: str | list[str] = "", service_name: str = "") -> None:
        super().__init__(endpoint, service_name)
        self._http: httpx.AsyncClient | None = None
        self._pool: UpstreamPool | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def init(self) -> None:
        self._pool = UpstreamPool(
            max_idle_per_host=self.max_connection_count,
            connect_timeout=self.timeout_ms / 1000,
            idle_timeout=REUSE_SECONDS,
        )
        self._http = httpx.AsyncClient(
            timeout=self.timeout_ms / 1000,
            transport=httpx.AsyncHTTPTransport(**self._transport_options()),
        )
        if self.is_direct:
            await self.sync()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def sync(self) -> None:
        assert self._http is not None, "call init() first"
        try:
            answer = await self._http.get(self._discovery_url())
        except httpx.HTTPError as exc:
            raise PredictException(500, f"service discovery failed: {exc}") from None
        if answer.status_code != 200:
            raise PredictException(answer.status_code, answer.content)
        self._take_instances(answer.json())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            with contextlib.suppress(PredictException):
                await self.sync()

    async def predict(self, request: Request) -> Any:
        assert self._http is not None and self._pool is not None, "call init() first"
        body = self._body(request)
        timeout = self.timeout_ms / 1000
        failure = PredictException(500, "no attempt was made")
        for target in self._targets():
            try:
                if target.plain:
                    head = self._encoded(target, body)
                    answer = await self._pool.send(target.host, target.port, head, b"", timeout)
                    status, content = answer.status, answer.body
                else:
                    headers = self._headers(body)
                    reply = await self._http.post(target.url, content=body, headers=headers)
                    status, content = reply.status_code, reply.content
            except (httpx.HTTPError, UpstreamError) as exc:
                failure = PredictException(500, f"{target.base}: {exc}")
                self._failed(target)
                continue
            except TimeoutError:
                failure = PredictException(
                    500, f"{target.base}: no answer within {self.timeout_ms} ms"
                )
                continue
            result, retry = self._outcome(request, status, content)
            if retry is None:
                return result
            if retry.code in (502, 503):
                self._failed(target)
            failure = retry
        raise failure

    async def destroy(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._http is not None:
            await self._http.aclose()
        if self._pool is not None:
            self._pool.close()
