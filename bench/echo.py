"""Benchmark of the data path: the echo processor through the gateway and direct to its instance.

    python -m bench.echo                    # starts its own installation in a temp dir
    python -m bench.echo --gateway http://127.0.0.1:8080 [--controller URL] [--config PATH]

Measures requests/s and p50/p99 latency with wrk (keep-alive connections, a Lua script for
the POST body and token) at each concurrency, for a bounded time and request count. The
load generator runs on the same machine, so its CPU use is part of the picture.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from eas_core.errors import Conflict
from eas_core.sdk.control import ClientConfig, ControlClient
from tests.support.installation import REPO, free_port, start_installation

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "post.lua"
DEFAULT_OUTPUT = BENCH / "results" / "echo-core.md"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Target:
    """Where the load goes: the service's gateway URL, its instance URL, and its token."""

    service: str
    token: str
    gateway_url: str
    direct_url: str


@dataclass
class Result:
    path: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    detail: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def ensure_wrk() -> str:
    """wrk from PATH, installing the Debian package when missing (only possible as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed and this is not root: run `apt-get install wrk`")
    print("wrk not found: apt-get install -y wrk", file=sys.stderr)
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "wrk"]
    done = subprocess.run(apt, capture_output=True, text=True, timeout=900)
    found = shutil.which("wrk")
    if done.returncode != 0 or not found:
        raise SystemExit(
            f"could not install wrk ({shlex.join(apt)} exited {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return found


def require_loopback(url: str, what: str) -> str:
    """This benchmark measures one machine: refuse to send load anywhere else."""
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"{what} {url!r} is not on 127.0.0.1; this benchmark only runs locally")
    return url.rstrip("/")


def echo_document(name: str, instances: int) -> dict[str, Any]:
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(REPO / "examples" / "echo"),
        "processor_entry": "app.py",
        "metadata": {"instance": instances, "cpu": 1, "memory": 256},
    }


def deploy(client: ControlClient, gateway_url: str, name: str) -> tuple[Target, bool]:
    """Deploy (or reuse) the echo service; return the target and whether we created it."""
    created = True
    try:
        client.create_service(echo_document(name, 1))
    except Conflict:
        created = False
    client.wait_until_running(name, timeout=120)
    token = client.describe_service(name).access_token
    ready = [w for w in client.list_instances(name) if w.ready]
    if not ready:
        raise SystemExit(f"service {name!r} is running but lists no ready instance")
    direct = require_loopback(f"http://{ready[0].ip}:{ready[0].port}", "the instance")
    return (
        Target(
            service=name,
            token=token,
            gateway_url=f"{gateway_url}/api/predict/{name}",
            direct_url=f"{direct}/api/predict/{name}",
        ),
        created,
    )


def check_echo(url: str, token: str, body: bytes) -> None:
    """One request by hand first, so a broken path fails loudly instead of as a fast 4xx."""
    answer = httpx.post(url, content=body, headers={"Authorization": token}, timeout=10)
    if answer.status_code != 200 or answer.content != body:
        raise SystemExit(f"POST {url} answered {answer.status_code}: {answer.content[:200]!r}")


def run_wrk(
    wrk: str,
    url: str,
    token: str,
    *,
    connections: int,
    threads: int,
    duration: float,
    max_requests: int,
    body_size: int,
) -> dict[str, Any]:
    threads = max(1, min(threads, connections))
    per_thread = max(1, math.ceil(max_requests / threads))
    seconds = max(1, round(duration))
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        token,
        str(body_size),
        str(per_thread),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or len(lines) != 1:
        raise SystemExit(
            f"wrk exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    stats: dict[str, Any] = json.loads(lines[0].removeprefix("BENCH "))
    stats["raw"] = done.stdout
    return stats


def to_result(path: str, connections: int, stats: dict[str, Any]) -> Result:
    bounded = stats["bounded_us"] > 0  # every thread hit the request bound before -d ended
    micros = stats["bounded_us"] if bounded else stats["duration_us"]
    detail = {k: stats[k] for k in ("connect", "read", "write", "status", "timeout", "mismatched")}
    return Result(
        path=path,
        connections=connections,
        requests=stats["requests"],
        seconds=micros / 1e6,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=sum(detail.values()),
        detail=detail,
    )


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over a short sample (load averages lag by a minute)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split(" Copyright")[0].strip(),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "busy": f"{cpu_busy():.0f}%",
    }


def table(results: list[Result]) -> str:
    rows = [
        "| path | connections | requests/s | p50 ms | p99 ms | errors | requests |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {r.path} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {r.errors} | {r.requests} |"
        for r in results
    ]
    return "\n".join(rows)


def report(
    results: list[Result],
    args: argparse.Namespace,
    command: str,
    started: str,
    info: dict[str, str],
) -> str:
    errors = [f"{r.path}/{r.connections}: {r.detail}" for r in results if r.errors]
    mode = "connected to an existing installation" if args.gateway else "own installation"
    return "\n".join(
        [
            "# Echo benchmark: gateway and direct data path (and a FastAPI peer)",
            "",
            table(results),
            "",
            f"- command: `{command}`",
            f"- date: {started}",
            f"- machine: nproc {info['nproc']}, {info['cpu']}, Linux {info['kernel']}; "
            f"before the runs: CPU {info['busy']} busy over 1 s, load average {info['load']}",
            f"- python: {info['python']}; load generator: {info['wrk']}, "
            f"at most {args.threads} thread(s), keep-alive",
            f"- installation: {mode}; service: examples/echo (python, 1 instance, cpu 1, "
            f"8 worker threads); body: {args.body_size} bytes POST with `Authorization: <token>`",
            "- peer: bench/peers/fastapi_echo.py — the same token check and echo in FastAPI "
            "under uvicorn (uvloop + httptools, 1 worker), called directly (one hop, like "
            "`direct`)",
            f"- each run: at most {args.duration:g} s and {args.max_requests} requests, "
            "after a 1 s warm-up per path; latencies are wrk's (no coordinated-omission "
            "correction)",
            "- the load generator, gateway and instance all share the same "
            f"{info['nproc']} cores, so these numbers are a floor, not a capacity figure",
            "- errors: connect/read/write/timeout socket errors + HTTP status >= 400 + "
            "bodies that did not echo the request" + (" — " + "; ".join(errors) if errors else ""),
            "",
        ]
    )


@contextmanager
def target_service(args: argparse.Namespace) -> Iterator[Target]:
    """The echo service on our own installation, or on the one given; stopped afterwards."""
    if args.gateway:
        gateway = require_loopback(args.gateway, "--gateway")
        config = ClientConfig.load(args.config)
        endpoint = require_loopback(args.controller or config.endpoint, "the controller")
        client = ControlClient(endpoint, config.access_key_id, config.access_key_secret)
        try:
            target, created = deploy(client, gateway, args.service)
            try:
                yield target
            finally:
                if created:
                    client.delete_service(args.service)
        finally:
            client.close()
        return
    with tempfile.TemporaryDirectory(prefix="eas-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        print(f"starting an installation in {data_dir}", file=sys.stderr)
        installation = start_installation(data_dir)
        try:
            target, _ = deploy(installation.client, installation.gateway_url, args.service)
            yield target
        finally:
            installation.stop()


@contextmanager
def fastapi_peer(token: str) -> Iterator[str]:
    """The FastAPI echo beside us (bench/peers/fastapi_echo.py); yields its predict URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.peers.fastapi_echo", "--port", str(port), "--token", token],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}/api/predict/echo"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(url, content=b"x", headers={"Authorization": token}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per run")
    parser.add_argument("--connections", default="1,32", help="comma-separated concurrencies")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument("--body-size", type=int, default=100)
    parser.add_argument("--service", default="bench_echo")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--gateway", help="use an existing installation: its gateway URL")
    parser.add_argument("--controller", help="its control API (default: the config's)")
    parser.add_argument("--config", type=Path, help="eascmd config with the access key")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    parser.add_argument("--no-peers", action="store_true", help="skip the FastAPI baseline")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or not 0 < args.max_requests <= 10_000_000:
        parser.error("--duration must be in (0, 600] and --max-requests in (0, 10000000]")
    args.concurrency = [int(c) for c in args.connections.split(",") if c.strip()]
    if not args.concurrency or not all(0 < c <= 1024 for c in args.concurrency):
        parser.error("--connections: comma-separated numbers in 1..1024")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.echo", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    wrk = ensure_wrk()
    info = machine()  # before the runs: the load average shows what else is running
    body = b"x" * args.body_size
    results: list[Result] = []
    with target_service(args) as target, ExitStack() as peers:
        paths = {"gateway": target.gateway_url, "direct": target.direct_url}
        if not args.no_peers:
            paths["fastapi (peer)"] = peers.enter_context(fastapi_peer(target.token))
        for url in paths.values():
            check_echo(url, target.token, body)
        for name, url in paths.items():
            common = {"threads": args.threads, "body_size": args.body_size}
            run_wrk(wrk, url, target.token, connections=4, duration=1, max_requests=5000, **common)
            for connections in args.concurrency:
                print(f"{name}: {connections} connection(s) ...", file=sys.stderr)
                stats = run_wrk(
                    wrk,
                    url,
                    target.token,
                    connections=connections,
                    duration=args.duration,
                    max_requests=args.max_requests,
                    **common,
                )
                if args.verbose:
                    print(stats["raw"], file=sys.stderr)
                results.append(to_result(name, connections, stats))
                time.sleep(0.5)  # let the previous run's connections close
    text = report(results, args, command, started, info)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
