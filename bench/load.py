"""The load: wrk pinned to its own CPU, a fixed request, bounded runs, per-core CPU use.

One :func:`measure` is one wrk run (``--duration`` seconds at most, ``max_requests`` answers
at most) with keep-alive connections, driven by ``bench/wrk.lua``, which checks every 200
answer holds the expected bytes. Around each run the CPU time of every core (from
``/proc/stat``, through psutil) and of the server's processes is sampled, so a row says how
busy the server's core and the load generator's core were while it was measured.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

LUA = Path(__file__).resolve().parent / "wrk.lua"
ERROR_KINDS = ("connect", "read", "write", "timeout", "status", "mismatched")


@dataclass(frozen=True)
class Request:
    """What one server is sent, and what each of its answers must contain."""

    body: bytes
    expect: bytes
    content_type: str = "application/octet-stream"
    header: str = "Authorization"  # the token's header; "" sends none
    token: str = ""


@dataclass
class Sample:
    """One wrk run."""

    connections: int
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: dict[str, int]
    cores: list[float]  # busy % of every core over the run
    server_cpu: float  # the server's processes, % of one core

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class Row:
    """The runs of one server at one concurrency, and their medians."""

    connections: int
    samples: list[Sample] = field(default_factory=list)

    def _median(self, values: Sequence[float]) -> float:
        return statistics.median(values) if values else math.nan

    @property
    def rps(self) -> float:
        return self._median([s.rps for s in self.samples])

    @property
    def p50_us(self) -> float:
        return self._median([s.p50_us for s in self.samples])

    @property
    def p99_us(self) -> float:
        return self._median([s.p99_us for s in self.samples])

    @property
    def errors(self) -> dict[str, int]:
        return {k: sum(s.errors[k] for s in self.samples) for k in ERROR_KINDS}

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.samples)

    @property
    def cores(self) -> list[float]:
        width = min((len(s.cores) for s in self.samples), default=0)
        return [self._median([s.cores[i] for s in self.samples]) for i in range(width)]

    @property
    def server_cpu(self) -> float:
        return self._median([s.server_cpu for s in self.samples])

    @property
    def spread(self) -> tuple[float, float]:
        rates = [s.rps for s in self.samples]
        return (min(rates), max(rates)) if rates else (math.nan, math.nan)


def _busy(before: Sequence[Any], after: Sequence[Any]) -> list[float]:
    shares = []
    for old, new in zip(before, after, strict=True):
        # guest time is already inside user time on Linux: leave it out of the total.
        ticks = {k: v - getattr(old, k) for k, v in new._asdict().items() if "guest" not in k}
        total = sum(ticks.values())
        idle = ticks["idle"] + ticks.get("iowait", 0.0)
        shares.append(100.0 * (total - idle) / total if total > 0 else 0.0)
    return shares


def _cpu_seconds(processes: Sequence[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # gone since it was listed
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def tree(roots: Sequence[psutil.Process]) -> list[psutil.Process]:
    """The processes under ``roots`` (themselves included), listed now."""
    found: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            for process in [root, *root.children(recursive=True)]:
                found[process.pid] = process
        except psutil.Error:
            continue
    return list(found.values())


def measure(
    wrk: str,
    url: str,
    request: Request,
    *,
    connections: int,
    duration: float,
    max_requests: int,
    server: Sequence[psutil.Process],
    wrk_cpu: str = "1",
) -> Sample:
    """One wrk run against ``url``; ``server`` are the root processes whose CPU is counted."""
    seconds = max(1, round(duration))
    with tempfile.TemporaryDirectory(prefix="eas-bench-wrk-") as tmp:
        body, expect = Path(tmp) / "body", Path(tmp) / "expect"
        body.write_bytes(request.body)
        expect.write_bytes(request.expect)
        command = [
            "taskset",
            "-c",
            wrk_cpu,
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(LUA),
            url,
            "--",
            str(body),
            str(expect),
            request.content_type,
            request.header if request.token else "",
            request.token,
            str(max_requests),
        ]
        processes = tree(server)
        cpu_before = _cpu_seconds(processes)
        cores_before = psutil.cpu_times(percpu=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        cores_after = psutil.cpu_times(percpu=True)
        cpu_after = _cpu_seconds(tree(server))
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or len(lines) != 1:
        raise RuntimeError(
            f"wrk exited {done.returncode} on {url}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    stats: dict[str, Any] = json.loads(lines[0].removeprefix("BENCH "))
    bounded = stats["bounded_us"] > 0  # the thread hit the request bound before -d ended
    elapsed = (stats["bounded_us"] if bounded else stats["duration_us"]) / 1e6
    used = sum(cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in cpu_after)
    return Sample(
        connections=connections,
        requests=stats["requests"],
        seconds=elapsed,
        p50_us=float(stats["p50_us"]),
        p99_us=float(stats["p99_us"]),
        errors={k: int(stats[k]) for k in ERROR_KINDS},
        cores=_busy(cores_before, cores_after),
        server_cpu=100.0 * used / elapsed if elapsed > 0 else 0.0,
    )
