"""What the ENV stub's hop costs per request: one processor served in-process and through a
package ``ENV`` (a venv without OpenEAS, talking to the runtime over a Unix socket).

    python -m bench.env_hop [--requests 2000]   → bench/results/env-hop.md

Both run under `eascmd test` on loopback; one client sends requests one after another
(keep-alive), alternating between the two servers, so the difference of the latencies is
the hop: two frames over the socket and the ENV interpreter's own loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.kit import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "env-hop.md"
APP = """
import allspark

class Echo(allspark.BaseProcessor):
    def process(self, data):
        return data, 200

if __name__ == "__main__":
    Echo(worker_threads=1).run()
"""


def package(root: Path, *, env: bool) -> Path:
    root.mkdir(parents=True)
    (root / "app.py").write_text(APP)
    if env:
        venv = [sys.executable, "-m", "venv", "--without-pip", "--copies", str(root / "ENV")]
        subprocess.run(venv, check=True, timeout=120)
    desc = {
        "name": "hop",
        "processor_type": "python",
        "processor_path": str(root),
        "processor_entry": "app.py",
        "metadata": {"instance": 1, "rpc.worker_threads": 1},
    }
    (root.parent / f"{root.name}.json").write_text(json.dumps(desc))
    return root.parent / f"{root.name}.json"


def start(desc: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "eas_core.cli", "test", str(desc), "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return server, f"http://127.0.0.1:{port}/api/predict/hop"


def wait_ready(client: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.post(url, content=b"x").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url}: the service did not answer within 120 s")
        time.sleep(0.2)


def measure(descs: dict[str, Path], requests: int) -> dict[str, list[float]]:
    """Requests alternate between the servers, so the machine's load falls on both alike."""
    servers = {label: start(desc) for label, desc in descs.items()}
    latencies: dict[str, list[float]] = {label: [] for label in descs}
    body = b"x" * 64
    try:
        with httpx.Client(timeout=10) as client:
            for _, url in servers.values():
                wait_ready(client, url)
            for round_ in range(requests + 200):  # the first 200 warm up
                for label, (_, url) in servers.items():
                    begin = time.perf_counter()
                    answer = client.post(url, content=body)
                    if round_ >= 200:
                        latencies[label].append((time.perf_counter() - begin) * 1e6)
                    assert answer.content == body
        return latencies
    finally:
        for server, _ in servers.values():
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eas-hop-") as tmp:
        descs = {
            label: package(Path(tmp) / label.replace(" ", "-"), env=env)
            for label, env in (("in-process", False), ("ENV stub", True))
        }
        rows = {}
        for label, measured in measure(descs, args.requests).items():
            lat = sorted(measured)
            rows[label] = (statistics.median(lat), lat[int(len(lat) * 0.99) - 1])
    hop = rows["ENV stub"][0] - rows["in-process"][0]
    lines = [
        "# The ENV stub's hop per request",
        "",
        f"`python -m bench.env_hop --requests {args.requests}` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        "one client, sequential keep-alive requests of 64 bytes alternating between the two, "
        "`eascmd test` on loopback, "
        "on a shared 2-core machine (shape, not absolutes).",
        "",
        "| processor | median µs | p99 µs |",
        "|---|---|---|",
        *(f"| {k} | {m:.0f} | {p:.0f} |" for k, (m, p) in rows.items()),
        "",
        f"Hop (median difference): {hop:.0f} µs per request.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
