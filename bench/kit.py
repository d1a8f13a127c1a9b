"""`python -m bench.kit`: what one request costs the HTTP kit itself (eas_core/http).

An echo server on the kit alone (``HttpServer`` with a handler that answers the body) and,
with ``--proxy``, a second kit server in front of it that forwards each request through
``UpstreamPool`` — the gateway's two hops without routing or authentication. wrk drives it
(keep-alive POSTs of 5 bytes) for a bounded time; reported per row: requests/s, wrk's p50,
and the server processes' CPU time per request (user + system, from psutil), which moves
far less than throughput on a shared machine.

    python -m bench.kit                               # echo, c=1 and c=32, 3 s each
    python -m bench.kit --proxy --seconds 5
    python -m bench.kit --profile echo.prof           # cProfile the echo server meanwhile
    python -m bench.kit --callgrind 2000 [--proxy]    # instructions per request (valgrind)

Servers are pinned to CPU 0 and wrk to CPU 1 where the machine has two (``taskset``).

``--callgrind N`` runs the measured server (the echo server, or with ``--proxy`` the
forwarding one) under ``valgrind --tool=callgrind`` twice, sending N and then 2·N requests
one after another over one keep-alive connection, and reports the difference in executed
instructions divided by N: the start-up cancels out, and unlike time it does not move with
what else the machine runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

WRK_SCRIPT = 'wrk.method = "POST"\nwrk.body = "hello"\n'
MAX_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the servers (child processes) ---------------------------------------------------------
async def serve_echo(port: int) -> None:
    from eas_core.http.server import HttpServer, Request, Response

    async def echo(request: Request) -> Response:
        return Response(200, request.body)

    server = HttpServer(echo, max_body_bytes=1 << 20)
    await server.serve("127.0.0.1", port)
    await asyncio.Event().wait()


async def serve_proxy(port: int, upstream: int) -> None:
    from eas_core.http.server import HttpServer, Request, Response
    from eas_core.http.upstream import UpstreamPool

    pool = UpstreamPool()

    async def forward(request: Request) -> Response:
        head = (
            f"POST {request.path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-length: {len(request.body)}\r\n\r\n"
        ).encode()
        answer = await pool.send("127.0.0.1", upstream, head, request.body, 10.0)
        return Response(answer.status, answer.body)

    server = HttpServer(forward, max_body_bytes=1 << 20)
    await server.serve("127.0.0.1", port)
    await asyncio.Event().wait()


def serve(role: str, port: int, upstream: int, profile: str | None) -> None:
    import uvloop

    main = serve_echo(port) if role == "echo" else serve_proxy(port, upstream)
    profiler = cProfile.Profile() if profile else None

    def stop(*_: object) -> None:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    if profiler is not None:
        profiler.enable()
    uvloop.run(main)


# -- the driver ------------------------------------------------------------------------------
def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def start(
    role: str,
    port: int,
    upstream: int = 0,
    profile: str | None = None,
    prefix: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.kit", "--serve", role, "--port", str(port)]
    command += ["--upstream", str(upstream)]
    if profile:
        command += ["--profile", profile]
    process = subprocess.Popen(pinned(0, [*(prefix or []), *command]))
    deadline = time.monotonic() + (120 if prefix else 10)
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the {role} server did not listen on port {port} in time")


def sequential(port: int, count: int) -> None:
    """``count`` POSTs one after another over one keep-alive connection, each answer read
    and checked."""
    request = b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\n\r\nhello"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        stream = sock.makefile("rb")
        for _ in range(count):
            sock.sendall(request)
            status = stream.readline()
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not status.startswith(b"HTTP/1.1 200") or stream.read(length) != b"hello":
                raise SystemExit(f"unexpected answer: {status!r}")


def instructions(args: argparse.Namespace, count: int, out: Path) -> int:
    """Instructions the measured server executes over its life while serving ``count``."""
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q"]
    echo_port = free_port()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        if args.proxy:
            servers.append(start("echo", echo_port))
            target = free_port()
            servers.append(start("proxy", target, echo_port, prefix=valgrind))
        else:
            target = echo_port
            servers.append(start("echo", echo_port, prefix=valgrind))
        sequential(target, count)
    finally:
        for server in reversed(servers):
            server.send_signal(signal.SIGTERM)
            server.wait(120)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {out}")


def callgrind(args: argparse.Namespace) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind (apt-get install -y valgrind)")
    count = min(args.callgrind, 20_000)
    with tempfile.TemporaryDirectory() as scratch:
        once = instructions(args, count, Path(scratch) / "once.out")
        twice = instructions(args, 2 * count, Path(scratch) / "twice.out")
    path = "proxy" if args.proxy else "echo"
    print(f"{path}: {(twice - once) / count:,.0f} instructions per request (N={count})")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def wrk(port: int, connections: int, seconds: float, script: str) -> tuple[int, float]:
    """(requests answered, p50 latency in µs)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script]
    out = subprocess.run(
        pinned(1, [*command, f"http://127.0.0.1:{port}/echo"]),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[p50.group(2)]
    return requests, float(p50.group(1)) * scale


def measure(args: argparse.Namespace) -> None:
    seconds = min(args.seconds, MAX_SECONDS)
    echo_port = free_port()
    servers = [start("echo", echo_port, profile=None if args.proxy else args.profile)]
    target = echo_port
    if args.proxy:
        target = free_port()
        servers.append(start("proxy", target, echo_port, profile=args.profile))
    processes = [psutil.Process(s.pid) for s in servers]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        wrk(target, 1, 1, script.name)  # warm-up
        print(f"{'path':<6} {'c':>3} {'req/s':>8} {'p50 µs':>7} {'CPU µs/req':>10}")
        for connections in args.connections:
            before = cpu_seconds(processes)
            count, p50 = wrk(target, connections, seconds, script.name)
            used = cpu_seconds(processes) - before
            path = "proxy" if args.proxy else "echo"
            rate = count / seconds
            per = used / count * 1e6
            print(f"{path:<6} {connections:>3} {rate:>8.0f} {p50:>7.0f} {per:>10.1f}")
    finally:
        Path(script.name).unlink()
        for server in reversed(servers):
            server.send_signal(signal.SIGTERM)
            server.wait(10)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kit", description=__doc__)
    parser.add_argument("--proxy", action="store_true", help="measure through a forwarding hop")
    parser.add_argument("--seconds", type=float, default=3.0, help=f"per row, ≤ {MAX_SECONDS:g}")
    parser.add_argument(
        "--connections", type=lambda s: [int(c) for c in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--profile", help="write the front server's cProfile stats here")
    parser.add_argument("--callgrind", type=int, metavar="N", help="count instructions instead")
    parser.add_argument("--serve", choices=["echo", "proxy"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.upstream, args.profile)
        return
    if args.callgrind:
        callgrind(args)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("python -m bench.kit needs wrk (apt-get install -y wrk)")
    measure(args)


if __name__ == "__main__":
    main(sys.argv[1:])
