"""``import allspark`` inside a package's own ENV interpreter, where OpenEAS is not installed.

The processor class keeps PAI-EAS's names (``initialize``, ``process(data)``, optionally
``process_batch(data_list)``, ``get_model_path``, ``get_model_config``). ``run()`` does not
serve HTTP itself: the instance runtime, in OpenEAS's own interpreter, keeps the HTTP server,
admission, metrics and batching, and hands each request body over a Unix socket
(``EAS_ENVSTUB_SOCKET``). One connection per worker thread, so ``worker_threads`` requests
run at once here. Standard library only, Python 3.8 or newer.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

from . import _frames

__all__ = ["BaseProcessor"]

SOCKET_VARIABLE = "EAS_ENVSTUB_SOCKET"


def _encode(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"process must return bytes or str data, not {type(data).__name__}")


def _answer(result: Any) -> tuple[bytes, int]:
    """``(data, status)`` as PAI-EAS processors return it, or bare data meaning 200."""
    if isinstance(result, tuple) and len(result) >= 2:
        return _encode(result[0]), int(result[1])
    return _encode(result), 0


class BaseProcessor:
    def __init__(self, worker_threads: int = 5, worker_processes: int = 1, endpoint: Any = None):
        if worker_threads < 1 or worker_processes < 1:
            raise ValueError("worker_threads and worker_processes must be at least 1")
        self.worker_threads = worker_threads
        self.worker_processes = worker_processes
        self.endpoint = endpoint
        self._model_entry = ""
        self._model_config = ""

    def initialize(self) -> None:
        """Load the model; runs once before the service is ready."""

    def process(self, data: bytes) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement process(data)")

    def _serve_locally(self) -> NoReturn:
        """``ENV/bin/python app.py`` by hand: the OpenEAS that made this ENV
        (`eascmd pysdk init`) serves this file on ``endpoint`` (default 0.0.0.0:8080)."""
        made_by = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_local.json")
        try:
            with open(made_by) as file:
                openeas = json.load(file)["openeas_python"]
        except (OSError, ValueError, KeyError):
            sys.exit(
                f"{SOCKET_VARIABLE}: not set. This allspark is the ENV stub: run the package "
                "with `eascmd test app.json` or deploy it, and OpenEAS serves it."
            )
        host, _, port = (self.endpoint or "0.0.0.0:8080").rpartition(":")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EAS_", "PYTHON"))}
        env.update(EAS_HOST=host or "0.0.0.0", EAS_PORT=port)
        entry = os.path.abspath(sys.argv[0])
        command = [openeas, "-m", "eas_core.runtime.envhost", sys.executable, entry]
        os.execve(openeas, command, env)

    def get_model_path(self) -> str:
        return self._model_entry

    def get_model_config(self) -> str:
        return self._model_config

    def run(self) -> None:
        path = os.environ.get(SOCKET_VARIABLE)
        if not path:
            self._serve_locally()
        first = _connect(path)
        batch = callable(getattr(self, "process_batch", None))
        hello = {"threads": self.worker_threads, "batch": batch, "python": sys.version}
        _frames.send(first, [json.dumps(hello).encode()])
        (load,) = _frames.receive(first)
        settings = json.loads(load)
        self._model_entry = settings["model_entry"]
        self._model_config = settings["model_config"]
        try:
            self.initialize()
        except BaseException as exc:  # SystemExit from user code is a load failure too
            traceback.print_exc()
            _frames.send(first, [b"E", f"{type(exc).__name__}: {exc}".encode()])
            sys.exit(1)
        _frames.send(first, [b"K"])
        workers = [threading.Thread(target=self._loop, args=(first,))]
        # The runtime says how many requests it runs at once (rpc.worker_threads wins over
        # the constructor's worker_threads); one connection, one thread each.
        for _ in range(int(settings["connections"]) - 1):
            workers.append(threading.Thread(target=self._loop, args=(_connect(path),)))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _loop(self, sock: socket.socket) -> None:
        while True:
            try:
                message = _frames.receive(sock)
            except (ConnectionError, OSError):
                return  # the runtime went away: this worker is done
            _frames.send(sock, self._handle(message))

    def _handle(self, message: list[bytes]) -> list[bytes]:
        kind, bodies = message[0], message[1:]
        try:
            if kind == b"P":
                data, status = _answer(self.process(bodies[0]))
                return [b"R", str(status).encode(), data]
            answers = self.process_batch(list(bodies))  # type: ignore[attr-defined]
            if len(answers) != len(bodies):
                raise ValueError(
                    f"process_batch returned {len(answers)} answers for {len(bodies)} requests"
                )
            reply = [b"S"]
            for answer in answers:
                data, status = _answer(answer)
                reply += [str(status).encode(), data]
            return reply
        except Exception as exc:  # one request's error answers that request only
            return [b"E", type(exc).__name__.encode(), str(exc).encode()]


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock
