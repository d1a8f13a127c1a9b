"""How an instance process serves: one event loop per worker process, threads for processing.

``serve`` is the single entry used by every processor kind. With one worker process the
model is loaded first and the port bound after, so nothing answers before the instance is
ready. With ``worker_processes > 1`` that many processes are forked; each loads the
processor, then listens on the same port with SO_REUSEPORT, so the kernel spreads new
connections evenly over the workers that are ready (a shared accept socket would hand most
of them to whichever process wakes first). The supervisor holds the port bound, not
listening, so no other program takes it meanwhile. A worker that dies is forked again.
The worker processes share one table of how stuck each is (``occupancy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

import uvloop

from eas_core.backoff import Backoff
from eas_core.config import RuntimeSettings
from eas_core.http.limits import limits_from
from eas_core.http.server import HttpServer
from eas_core.runtime.app import RuntimeApp, refusal
from eas_core.runtime.occupancy import Occupancy, private_table, shared_table
from processors.base import Processor, batch_method

log = logging.getLogger(__name__)

LOAD_FAILED = 3  # exit status of an instance whose processor could not load
WORKER_BACKOFF = Backoff(initial=0.5, maximum=10.0)


def report_failure(settings: RuntimeSettings, reason: str) -> None:
    """Leave the reason where the backend reads it (`eascmd w` shows it)."""
    print(f"[ERROR] {reason}", file=sys.stderr, flush=True)
    if settings.instance_dir is not None:
        path = settings.instance_dir / "reason"
        path.write_text(reason[:4000])


def load(factory: Callable[[], Processor], settings: RuntimeSettings) -> Processor:
    try:
        processor = factory()
        if settings.batching and batch_method(processor) is None:
            # Refused rather than served one by one: the service asked for batches (a GPU
            # model's throughput depends on them), and an instance that quietly ran without
            # would hide that until it is under load. Refused before the model loads.
            report_failure(settings, refusal(processor))
            sys.stderr.flush()
            os._exit(LOAD_FAILED)
        processor.load(settings.model_entry, settings.model_config_text)
    except BaseException as exc:  # SystemExit from user code is a load failure too
        traceback.print_exc()
        report_failure(settings, f"processor failed to initialize: {type(exc).__name__}: {exc}")
        sys.stderr.flush()
        os._exit(LOAD_FAILED)
    return processor


def bind(host: str, port: int, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    sock.setblocking(False)
    return sock


async def _serve_one(
    processor: Processor,
    sock: socket.socket,
    settings: RuntimeSettings,
    threads: int,
    occupancy: Occupancy,
) -> None:
    app = RuntimeApp(processor, settings, threads, occupancy)
    server = HttpServer(
        app.handle,
        max_body_bytes=settings.max_body_bytes,
        limits=limits_from(settings),
        immediate=app.immediate,
    )
    await server.serve(settings.host, settings.port, sock=sock)
    app.ready = True
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("serving %s on %s:%s", settings.service_name, settings.host, settings.port)
    print("[INFO] Service start successfully", flush=True)
    await stopping.wait()
    # Drain: stop accepting, finish what is in flight (bounded by the request deadline).
    app.ready = False
    await server.drain(timeout=settings.keepalive_ms / 1000 + 1)
    app.close()


def serve(
    factory: Callable[[], Processor],
    settings: RuntimeSettings,
    *,
    threads: int,
    processes: int = 1,
) -> NoReturn:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    if processes <= 1:
        processor = load(factory, settings)
        try:
            sock = bind(settings.host, settings.port)
        except OSError as exc:
            report_failure(settings, f"cannot listen on {settings.host}:{settings.port}: {exc}")
            sys.exit(1)
        occupancy = Occupancy(threads, settings.keepalive_ms, private_table())
        uvloop.run(_serve_one(processor, sock, settings, threads, occupancy))
        sys.exit(0)
    try:
        reserved = bind(settings.host, settings.port, listen=False, reuse_port=True)
    except OSError as exc:
        report_failure(settings, f"cannot listen on {settings.host}:{settings.port}: {exc}")
        sys.exit(1)
    _supervise(factory, reserved, settings, threads, processes)


def _supervise(
    factory: Callable[[], Processor],
    reserved: socket.socket,
    settings: RuntimeSettings,
    threads: int,
    processes: int,
) -> NoReturn:
    children: dict[int, int] = {}  # pid → worker index
    stopping = False
    table = shared_table(processes)

    def fork(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                reserved.close()
                processor = load(factory, settings)
                sock = bind(settings.host, settings.port, reuse_port=True)
                occupancy = Occupancy(threads, settings.keepalive_ms, table, index)
                uvloop.run(_serve_one(processor, sock, settings, threads, occupancy))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(processes):
        fork(index)
    failures = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        if index < 0 or stopping:
            continue
        table[index] = 0.0  # its stuck threads died with it
        code = os.waitstatus_to_exitcode(status)
        if code == LOAD_FAILED:
            # Every worker loads the same model: one failing to load means all will.
            stop(signal.SIGTERM, None)
            for other in list(children):
                os.waitpid(other, 0)
            sys.exit(LOAD_FAILED)
        failures += 1
        delay = WORKER_BACKOFF.delay(failures)
        log.warning("worker process %d exited (%d); starting it again in %.1fs", index, code, delay)
        time.sleep(delay)
        fork(index)
    sys.exit(0)
