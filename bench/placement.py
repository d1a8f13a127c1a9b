"""Placement latency and roll time of the echo service, on the local backend and on a
two-node local Ray cluster.

    python -m bench.placement                       # 5 placements, 3 rolls per backend
    python -m bench.placement --placements 7 --rolls 3 --output bench/results/placement.md

- placement: ``create`` → Running (every instance ready), the median of ``--placements``
  fresh services of 2 instances each, each deleted before the next.
- roll: ``modify`` (a new model_config: a new version) → the new version serving 100 %:
  every instance not being stopped is of the new version and ready, so the route table
  holds new instances only (a stopped instance leaves the route table at once).

Each backend gets an installation of its own in a temp dir (`eascmd server`, free loopback
ports), stopped at the end; the Ray cluster (a head and a worker node, ``ray start`` each,
1 CPU apiece) is stopped by the PIDs it started. Everything is bounded by counts and
timeouts. The callers, the installation and Ray share the machine: the figures are the
whole path as an operator on the same host sees it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bench.installation import Installation, start
from bench.openeas import description
from eas_core.sdk.control import ControlClient
from tests.support.raycluster import RAY_ENV, RayCluster

INSTANCES = 2
TIMEOUT = 240.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=5)
    parser.add_argument("--rolls", type=int, default=3)
    parser.add_argument("--backends", default="local,ray")
    parser.add_argument("--output", type=Path, help="also write the results here (markdown)")
    args = parser.parse_args()
    lines = []
    for backend in args.backends.split(","):
        with (
            tempfile.TemporaryDirectory(prefix=f"eas-bench-placement-{backend}-") as tmp,
            installation(backend, Path(tmp)) as running,
        ):
            lines.append(measure(backend, running.client, args.placements, args.rolls))
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        args.output.write_text(document(text, args))


@contextmanager
def installation(backend: str, tmp: Path) -> Iterator[Installation]:
    data_dir = tmp / "data"
    data_dir.mkdir()
    if backend == "local":
        running = start(data_dir, cpus=None)
        try:
            yield running
        finally:
            running.stop()
        return
    if backend != "ray":
        raise SystemExit(f"--backends: no {backend!r} (have: local, ray)")
    os.environ.update(RAY_ENV)
    cluster = RayCluster()
    try:
        cluster.start_node("public", cpu=1, memory_mb=1024)
        cluster.start_node("public", cpu=1, memory_mb=1024)
        running = start(
            data_dir,
            cpus=None,
            extra_env={"EAS_BACKEND": "ray", "EAS_RAY_ADDRESS": cluster.address},
        )
        try:
            yield running
        finally:
            running.stop()
    finally:
        cluster.stop()


def wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {TIMEOUT:g} s waiting for {what}")
        time.sleep(0.05)


def serving(client: ControlClient, name: str, version: int) -> bool:
    """Every instance not being stopped is of ``version`` and ready, and all are there."""
    live = [i for i in client.list_instances(name) if i.status != "Terminating"]
    return len(live) == INSTANCES and all(i.ready and i.version == version for i in live)


def gone(client: ControlClient, name: str) -> bool:
    return name not in {s.service_name for s in client.list_services()}


def measure(backend: str, client: ControlClient, placements: int, rolls: int) -> str:
    document = description("echo", "", None, None)
    document["metadata"] = {**document["metadata"], "instance": INSTANCES, "cpu": 0.2}
    placed: list[float] = []
    for index in range(placements):
        name = f"bench_place_{index}"
        started = time.monotonic()
        client.create_service({**document, "name": name})
        wait(partial(serving, client, name, 1), f"{name} to run")
        placed.append(time.monotonic() - started)
        print(f"{backend}: placement {index + 1}/{placements}: {placed[-1]:.2f} s", file=sys.stderr)
        client.delete_service(name)
        wait(partial(gone, client, name), f"{name} to go")
    rolled: list[float] = []
    name = "bench_roll"
    client.create_service({**document, "name": name})
    wait(partial(serving, client, name, 1), f"{name} to run")
    for index in range(rolls):
        version = index + 2
        started = time.monotonic()
        client.modify_service(name, {"model_config": f"version-{version}"})
        wait(partial(serving, client, name, version), f"version {version}")
        rolled.append(time.monotonic() - started)
        print(f"{backend}: roll {index + 1}/{rolls}: {rolled[-1]:.2f} s", file=sys.stderr)
    client.delete_service(name)
    wait(partial(gone, client, name), f"{name} to go")
    return (
        f"{backend:5}  placement (create → Running, {INSTANCES} instances)  median "
        f"{statistics.median(placed):6.2f} s  min {min(placed):6.2f}  max {max(placed):6.2f}  "
        f"(n={len(placed)})\n"
        f"{backend:5}  roll (modify → new version serving 100 %)    median "
        f"{statistics.median(rolled):6.2f} s  min {min(rolled):6.2f}  max {max(rolled):6.2f}  "
        f"(n={len(rolled)})"
    )


def document(text: str, args: argparse.Namespace) -> str:
    command = "python -m bench.placement " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    return (
        "# bench.placement: placement latency and roll time, local backend and Ray\n\n"
        f"`{command}`, {when}, {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, load average {load:.1f} at the end of the run, "
        "installation unpinned, Ray 2-node cluster on the same host (1 CPU per node).\n\n"
        f"```\n{text}\n```\n"
    )


if __name__ == "__main__":
    main()
