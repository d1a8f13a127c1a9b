"""Starting and stopping a peer server: pinned to a CPU, waited on until it answers, stopped
by the PIDs started here.

A server is started with ``taskset -c 0`` (every process it forks inherits the pin), in its
own session so that its output and signals stay its own. It is ready when one real request
(the workload's) is answered 200. Stopping sends SIGTERM to the process started, then
SIGKILL to whatever is left of the processes seen under it — Ray's raylet and workers, a
LitServe inference worker, BentoML's service process — and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.load import Request, tree

STOP_TIMEOUT = 20.0


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def root(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def processes(self) -> list[psutil.Process]:
        """The processes under the server now; remembered, so that stop finds them all."""
        try:
            found = tree([self.root])
        except psutil.Error:
            found = []
        self.seen.update((p.pid, p) for p in found)
        return found

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # is_running() compares the start time too: the same process as was seen, not a pid
        # reused since by something else.
        left = [p for p in self.seen.values() if p.is_running()]
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(left, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()


def start(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpus: str = "0",
) -> Server:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", cpus, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Server(name, process, log)


def answer(url: str, request: Request, timeout: float = 10.0) -> httpx.Response:
    headers = {"Content-Type": request.content_type}
    if request.token and request.header:
        headers[request.header] = request.token
    return httpx.post(url, content=request.body, headers=headers, timeout=timeout)


def wait_ready(
    server: Server,
    url: str,
    request: Request,
    *,
    timeout: float,
    check: Callable[[bytes], str | None],
) -> None:
    """Until the server answers the workload's request 200 with a right answer; raise with
    its log when it exits, answers wrong, or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} while starting; "
                f"its log ends:\n{server.log_tail()}"
            )
        try:
            reply = answer(url, request, timeout=5)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
            continue
        if reply.status_code == 200:
            wrong = check(reply.content)
            if wrong is None:
                return
            raise RuntimeError(f"{server.name} answered a wrong result at {url}: {wrong}")
        last = f"HTTP {reply.status_code}: {reply.content[:300]!r}"
        if reply.status_code in (401, 403, 405, 422):
            raise RuntimeError(f"{server.name} refused the request at {url}: {last}")
        time.sleep(0.3)
    raise RuntimeError(
        f"{server.name} did not answer at {url} within {timeout:g} s (last: {last}); "
        f"its log ends:\n{server.log_tail()}"
    )
