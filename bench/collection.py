"""The controller's metrics collection cost: CPU seconds per scraped instance per round.

    python -m bench.collection [--instances 50] [--rounds 20]

A separate process serves a real instance's Prometheus text (eas_core.runtime.metrics with
answers of several codes recorded) on loopback; the controller's Collector scrapes it as
``--instances`` instances (each with a live pid for the psutil read), turns the counters into
points and writes them to a SQLite store, ``--rounds`` times. The CPU time of this process
(scraping threads, parsing, psutil, SQLite) divided by rounds × instances is the figure. The
server's own CPU is not counted: it is the instances' cost, not the controller's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.metrics.collector import Collector
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, SeriesStore
from eas_core.spec.status import InstanceStatus

SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from eas_core.runtime.metrics import RuntimeMetrics

    metrics = RuntimeMetrics("bench", 8, version=1, instance="bench-1-x",
                             queued=lambda: 2, busy=lambda: 1)
    for n in range(10_000):
        metrics.answered((200, 200, 200, 404, 500)[n % 5], 0.001 * (n % 97), received=100, sent=200)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = metrics.render()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            settings = ControllerSettings(data_dir=Path(tmp), gateway_port=1)
            series = SeriesStore(Repository(f"sqlite:///{tmp}/eas.db").engine)
            collector = Collector(settings, series)
            collector(
                Snapshot(
                    [
                        ObservedInstance(
                            id=f"bench-1-{n}",
                            service=f"bench{n % 5}",
                            version=1,
                            revision=0,
                            status=InstanceStatus.RUNNING,
                            host="127.0.0.1",
                            port=port,
                            node="local",
                            pid=server.pid,
                        )
                        for n in range(args.instances)
                    ]
                )
            )
            collector.collect()  # the baseline scrape, not counted
            cpu, wall = time.process_time(), time.monotonic()
            points = 0
            for _ in range(args.rounds):
                points += len(collector.collect())
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            collector.stop()
        finally:
            server.terminate()
            server.wait()
    per = cpu / (args.rounds * args.instances)
    print(
        f"{args.instances} instances × {args.rounds} rounds: {cpu:.2f} s CPU, {wall:.2f} s wall, "
        f"{points} points; {per * 1000:.2f} ms CPU per scraped instance per round "
        f"(at a 5 s interval: {per / 5 * 100:.3f}% of one core per instance); pid {os.getpid()}"
    )


if __name__ == "__main__":
    main()
