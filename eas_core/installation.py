"""A whole installation on one machine: the gateway and the controller as supervised child
processes, sharing one data directory. What `eascmd server` runs.

Each part runs in its own process and session, so a crash of one does not take the other
down (a dead controller leaves the gateway serving its last route table) and the terminal's
Ctrl-C reaches only this supervisor, which then stops everything in order: the controller
first, then the instances, then the gateway.

Instances belong to the installation, not to the controller process: a controller that
stops, crashes or is restarted alone (SIGTERM included) leaves them serving, and the next
controller adopts them. Only the installation's own shutdown stops them, itself, through
the backend it is configured with (``EAS_BACKEND``), once no controller is left that could
start them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from eas_core.backoff import Backoff
from eas_core.config import ControllerSettings, InstallationSettings, child_environment
from eas_core.controller.backends.registry import backend_class, build_backend
from eas_core.spec.paths import PING_PATH

log = logging.getLogger(__name__)

RESTART_BACKOFF = Backoff(initial=0.5, maximum=10.0)
# A part that ran this long before it died failed afresh: its back-off starts over.
STABLE_SECONDS = 60.0


@dataclass
class Part:
    name: str
    command: list[str]
    health_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures: int = 0  # consecutive deaths, each soon after its start
    started_at: float = 0.0
    pass_fds: tuple[int, ...] = ()


class Installation:
    def __init__(self, settings: InstallationSettings, *, gateways: int = 1) -> None:
        """``gateways``: how many gateways to run, on gateway_port, gateway_port + 1, …;
        the controller pushes the route table to each, and each serves every service."""
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "logs"
        base = {
            "EAS_DATA_DIR": str(self.data_dir),
            "EAS_HOST": settings.host,
            "EAS_CONTROLLER_PORT": str(settings.controller_port),
            "EAS_GATEWAY_PORT": str(settings.gateway_port),
            "EAS_BACKEND": settings.backend,
        }
        if settings.ray_address:
            base["EAS_RAY_ADDRESS"] = settings.ray_address
        if settings.public_endpoint:
            base["EAS_PUBLIC_ENDPOINT"] = settings.public_endpoint
        if settings.store:
            base["EAS_STORE"] = settings.store
        self.gateway_ports = [settings.gateway_port + i for i in range(gateways)]
        urls = [f"http://{settings.host}:{port}" for port in self.gateway_ports]
        controller_env = {**base, "EAS_GATEWAYS": json.dumps(urls)}
        self.parts = [
            Part(
                "gateway",
                [sys.executable, "-m", "eas_core.gateway"],
                f"{settings.gateway_url}{PING_PATH}",
                base,
            ),
            *(
                Part(
                    f"gateway-{i + 1}",
                    [sys.executable, "-m", "eas_core.gateway"],
                    f"{url}{PING_PATH}",
                    {**base, "EAS_GATEWAY_PORT": str(port)},
                )
                for i, (port, url) in enumerate(zip(self.gateway_ports, urls, strict=True))
                if i > 0
            ),
            Part(
                "controller",
                [sys.executable, "-m", "eas_core.controller"],
                f"{settings.controller_url}/api/v1/health",
                controller_env,
            ),
        ]
        self.stopping = False
        self.gateway_socket: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def start(self, on_part: Callable[[Part], None] | None = None) -> None:
        """Start the parts and wait until each answers; ``on_part`` is told of each part
        before it is waited for (``eascmd server`` says what it is waiting for)."""
        backend_class(self.settings.backend)  # an unknown backend is refused before anything
        # Secrets live here (access keys, tokens, the internal token): this user only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.settings.internal_token()  # create it before two processes race for it
        # Bound once, here, and handed to each gateway process started (EAS_GATEWAY_FD):
        # while a crashed gateway is started again, callers that connect wait in the
        # socket's backlog instead of being refused.
        self.gateway_socket = listen(self.settings.host, self.settings.gateway_port)
        self.sockets = [self.gateway_socket]
        self.sockets += [listen(self.settings.host, p) for p in self.gateway_ports[1:]]
        gateways = [part for part in self.parts if part.name.startswith("gateway")]
        for gateway, sock in zip(gateways, self.sockets, strict=True):
            fd = sock.fileno()
            gateway.env = {**gateway.env, "EAS_GATEWAY_FD": str(fd)}
            gateway.pass_fds = (fd,)
        for part in self.parts:
            self._spawn(part)
        for part in self.parts:
            if on_part is not None:
                on_part(part)
            self._wait_healthy(part, timeout=60)

    def add(self, part: Part, *, timeout: float = 180) -> None:
        """Start one more supervised part once the core is up (the pipelines)."""
        self.parts.append(part)
        self._spawn(part)
        self._wait_healthy(part, timeout=timeout)

    def _spawn(self, part: Part) -> None:
        logfile = open(self.log_dir / f"{part.name}.log", "ab")  # noqa: SIM115 (child keeps it)
        part.process = subprocess.Popen(
            part.command,
            env=child_environment(part.env),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=part.pass_fds,
        )
        logfile.close()
        part.started_at = time.monotonic()
        (self.run_dir / f"{part.name}.pid").write_text(str(part.process.pid))

    def _wait_healthy(self, part: Part, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert part.process is not None
            if part.process.poll() is not None:
                tail = (self.log_dir / f"{part.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the {part.name} exited during start-up:\n{tail}")
            try:
                if httpx.get(part.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the {part.name} did not become healthy within {timeout:g} s")

    def supervise(self) -> None:
        """Restart a part that dies, with back-off, until ``stop`` is asked."""
        while not self.stopping:
            for part in self.parts:
                if self.stopping or part.process is None or part.process.poll() is None:
                    continue
                code = part.process.returncode
                part.restarts += 1
                stable = time.monotonic() - part.started_at > STABLE_SECONDS
                part.failures = 1 if stable else part.failures + 1
                delay = RESTART_BACKOFF.delay(part.failures)
                log.warning(
                    "the %s exited with %s; starting it again in %.1fs", part.name, code, delay
                )
                time.sleep(delay)
                if not self.stopping:
                    self._spawn(part)
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the parts in reverse order: pipelines, then the controller, then the
        instances, then the gateway. Each part runs in its own session, so its whole
        process group goes, its own children included."""
        self.stopping = True
        for part in reversed(self.parts):
            if part.name == "gateway" and part.process is not None:
                self._stop_instances()  # no controller is left to start them again
            process = part.process
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            # The part's own children may outlive it by a moment; none may outlive us.
            if not _group_gone(process.pid, timeout=15):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            (self.run_dir / f"{part.name}.pid").unlink(missing_ok=True)
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        self.gateway_socket = None

    def _stop_instances(self) -> None:
        try:
            # The settings the controller had: these, and the environment it was started with.
            settings = ControllerSettings(
                **{**self.settings.model_dump(exclude_unset=True), "data_dir": self.data_dir}
            )
            build_backend(settings).shutdown(stop_instances=True)
        except Exception:  # the gateway must still be stopped
            log.exception("could not stop the instances of %s", self.data_dir)


def _group_gone(pgid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def listen(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, inheritable by the gateway processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"the gateway cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
