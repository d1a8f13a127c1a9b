"""Serve a package whose ``ENV`` interpreter has no OpenEAS in it, through the allspark stub.

Boot runs ``python -m eas_core.runtime.envhost ENV/bin/python ENTRY`` when a Python package
has an ``ENV``. The ENV interpreter is asked first what it is: not a Python, or older than
the stub supports, fails the instance saying so (``eascmd desc``/``w`` show it); one with
OpenEAS installed runs the entry itself, as before. Otherwise the entry runs under the ENV
interpreter with only the stub (``envstub/``) on its path, and this process — OpenEAS's own
interpreter — keeps the HTTP server, admission, metrics and batching, handing each request
body over a Unix socket in length-prefixed frames (one connection per worker thread), as
Triton's Python backend does with its stub.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eas_core.config import RuntimeSettings, child_environment
from eas_core.runtime.envstub.allspark import SOCKET_VARIABLE, _frames
from eas_core.runtime.workers import report_failure, serve
from processors.base import RequestContext

STUB_DIR = Path(__file__).parent / "envstub"
OLDEST_PYTHON = (3, 8)
PROBE_TIMEOUT_S = 60.0
BOOT_FAILED = 4
_PROBE = (
    "import json, sys, importlib.util; print(json.dumps({'version': list(sys.version_info[:2]),"
    " 'openeas': importlib.util.find_spec('eas_core') is not None}))"
)


class EnvError(Exception):
    """The ENV cannot run this package; the message says what is wrong with it."""


def probe(python: str) -> tuple[tuple[int, int], bool]:
    """The ENV interpreter's major.minor and whether OpenEAS is importable there."""
    try:
        done = subprocess.run(
            [python, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=child_environment({}, drop_prefix="PYTHON"),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(
            f"ENV/bin/python: is not a Python interpreter that runs here ({exc})"
        ) from exc
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        major, minor = answer["version"]
        found = bool(answer["openeas"])
    except (ValueError, IndexError, KeyError, TypeError):
        detail = (done.stderr or done.stdout).strip()[-300:] or f"exit code {done.returncode}"
        raise EnvError(
            f"ENV/bin/python: is not a Python interpreter this runtime can use "
            f"(needs Python {OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]} or newer): {detail}"
        ) from None
    if (major, minor) < OLDEST_PYTHON:
        raise EnvError(
            f"ENV/bin/python: is Python {major}.{minor}; the allspark ENV stub needs Python "
            f"{OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]} or newer"
        )
    return (major, minor), found


def _remote_error(name: bytes, message: bytes) -> Exception:
    # Named as the processor's own exception, so the 400 body reads as it would in-process.
    kind = type(name.decode(errors="replace") or "Exception", (Exception,), {})
    return kind(message.decode(errors="replace"))


class EnvProcessor:
    """A runtime Processor whose ``process`` runs in the ENV interpreter, over the channel."""

    def __init__(self, first: socket.socket, listener: socket.socket, connections: int) -> None:
        self._first = first
        self._listener = listener
        self._connections = connections
        self._pool: queue.Queue[socket.socket] = queue.Queue()

    def load(self, model_entry: str, model_config: str) -> None:
        settings = {
            "model_entry": model_entry,
            "model_config": model_config,
            "connections": self._connections,
        }
        _frames.send(self._first, [json.dumps(settings).encode()])
        answer = _frames.receive(self._first)
        if answer[0] != b"K":
            raise EnvError(answer[1].decode(errors="replace"))
        self._pool.put(self._first)
        for _ in range(self._connections - 1):
            connection, _ = self._listener.accept()
            self._pool.put(connection)
        self._listener.close()

    def _call(self, message: list[bytes]) -> list[bytes]:
        connection = self._pool.get()
        try:
            _frames.send(connection, message)
            answer = _frames.receive(connection)
        finally:
            self._pool.put(connection)
        if answer[0] == b"E":
            raise _remote_error(answer[1], answer[2])
        return answer

    def process(self, body: bytes, ctx: RequestContext) -> Any:
        _, status, data = self._call([b"P", bytes(body)])
        return data, int(status)

    def stop(self) -> None:
        while not self._pool.empty():
            self._pool.get_nowait().close()


class EnvBatchProcessor(EnvProcessor):
    """For a processor class that defines ``process_batch(self, data_list)``."""

    def process_batch(self, bodies: Sequence[bytes], ctxs: Sequence[RequestContext]) -> Any:
        answer = self._call([b"B", *(bytes(body) for body in bodies)])
        pairs = answer[1:]
        return [(pairs[i + 1], int(pairs[i])) for i in range(0, len(pairs), 2)]


def _start(python: str, entry: str, settings: RuntimeSettings) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="eas-env-"))
    atexit.register(shutil.rmtree, workdir, True)
    path = str(workdir / "stub.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    # Only the stub on the path: the ENV must not pick up OpenEAS's own packages.
    env = child_environment(
        {SOCKET_VARIABLE: path, "PYTHONPATH": str(STUB_DIR)}, drop_prefix="PYTHON"
    )
    child = subprocess.Popen([python, entry], env=env)
    stopping = threading.Event()

    def stop_child() -> None:
        stopping.set()
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    atexit.register(stop_child)

    def watch() -> None:
        code = child.wait()
        if not stopping.is_set():
            report_failure(settings, f"the ENV interpreter running {entry} exited with code {code}")
            sys.stderr.flush()
            os._exit(1)

    threading.Thread(target=watch, daemon=True, name="env-watch").start()
    first, _ = listener.accept()
    hello = json.loads(_frames.receive(first)[0])
    threads = settings.worker_threads or int(hello["threads"])
    kind = EnvBatchProcessor if hello["batch"] else EnvProcessor
    processor = kind(first, listener, threads)
    serve(lambda: processor, settings, threads=threads, processes=1)


def main(argv: list[str]) -> None:
    settings = RuntimeSettings()
    python, entry = argv[1], argv[2]
    try:
        _, has_openeas = probe(python)
    except EnvError as exc:
        report_failure(settings, f"cannot prepare the instance: {exc}")
        sys.exit(BOOT_FAILED)
    sys.stdout.flush()
    sys.stderr.flush()
    if has_openeas:
        os.execv(python, [python, entry])
    _start(python, entry, settings)


if __name__ == "__main__":
    main(sys.argv)
