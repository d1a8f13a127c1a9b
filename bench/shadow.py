"""What mirroring costs the callers: their latency with shadow traffic off and on.

    python -m bench.shadow                        # 3 rounds × 400 calls, concurrency 1 and 8
    python -m bench.shadow --rounds 5 --calls 1000 --delay-ms 200 --output results/shadow.md

Starts its own installation in a temp dir and deploys three services of one small
processor (it answers ``{"y": x}`` for a number x): ``bench_live``, which the callers call;
``bench_same``, an identical candidate; ``bench_slow``, a candidate that takes ``--delay-ms``
per call (a slow model). Then, for each concurrency, it measures the callers' latency
through the gateway under three settings — mirroring off, 100 % mirrored to ``bench_same``,
100 % mirrored to ``bench_slow`` — in interleaved rounds (off, same, slow, off, same, …) so
that the machine's other load falls on all three alike, and prints p50 / p90 / p99 per
setting with what the gateway counted of the copies (sent, answered, dropped by its
bounds). Everything is bounded: the call count per round, the rounds, and the installation
is stopped at the end. Callers and installation share the machine, so the figures are the
whole path as a caller on the same host sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.installation import Installation, start

PROCESSOR = """\
import json
import time

import allspark


class Linear(allspark.BaseProcessor):
    def process(self, data):
        with open(self.get_model_path()) as f:  # the model file holds the delay in ms
            delay = float(f.read() or 0) / 1000
        if delay:
            time.sleep(delay)
        return json.dumps({"y": float(data)}).encode(), 200


if __name__ == "__main__":
    Linear(worker_threads=8).run()
"""

SETTINGS = ("off", "same", "slow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=400, help="calls per round and setting")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="the slow candidate's")
    parser.add_argument("--output", type=Path, help="also write the results here (markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eas-bench-shadow-") as tmp:
        lines = run(Path(tmp), args)
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        args.output.write_text(document(text, args))


def deploy(installation: Installation, tmp: Path, name: str, delay_ms: float) -> str:
    package = tmp / "processor"
    if not package.exists():
        package.mkdir()
        (package / "app.py").write_text(PROCESSOR)
    model = tmp / f"{name}.txt"
    model.write_text(str(delay_ms))
    installation.client.create_service(
        {
            "name": name,
            "processor_type": "python",
            "processor_path": str(package),
            "processor_entry": "app.py",
            "model_path": str(model),
            "metadata": {"instance": 1, "cpu": 0.1, "memory": 128},
        }
    )
    return installation.client.wait_until_running(name, timeout=120).access_token


def run(tmp: Path, args: argparse.Namespace) -> list[str]:
    data_dir = tmp / "data"
    data_dir.mkdir()
    # The packages are made in the temp dir: let deployments read from it.
    roots = {"EAS_ARTEFACT_LOCAL_ROOTS": json.dumps([str(tmp)])}
    installation = start(data_dir, cpus=None, extra_env=roots)
    try:
        token = deploy(installation, tmp, "bench_live", 0)
        deploy(installation, tmp, "bench_same", 0)
        deploy(installation, tmp, "bench_slow", args.delay_ms)
        lines = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            lines += measure(installation, token, concurrency, args)
        return lines
    finally:
        installation.stop()


def set_mirror(installation: Installation, setting: str) -> None:
    client = installation.client
    if setting == "off":
        client.shadow_off("bench_live")
    else:
        client.set_shadow("bench_live", f"bench_{setting}", 100)
    client.wait_shadow_applied("bench_live")


def calls(url: str, token: str, count: int, concurrency: int) -> list[float]:
    """``count`` calls from ``concurrency`` keep-alive callers; each one's latency (s)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    per_caller = count // concurrency

    def caller(offset: int) -> None:
        mine = []
        with httpx.Client(headers={"Authorization": token}, timeout=30) as http:
            for i in range(per_caller):
                x = str(offset * per_caller + i)
                started = time.perf_counter()
                answer = http.post(url, content=x)
                mine.append(time.perf_counter() - started)
                if answer.status_code != 200 or answer.json() != {"y": float(x)}:
                    failures.append(f"{answer.status_code} {answer.text[:80]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    if failures:
        raise RuntimeError(f"{len(failures)} calls did not get the live answer: {failures[:3]}")
    return latencies


def measure(
    installation: Installation, token: str, concurrency: int, args: argparse.Namespace
) -> list[str]:
    url = f"{installation.gateway_url}/api/predict/bench_live"
    seen: dict[str, list[float]] = {s: [] for s in SETTINGS}
    copies: dict[str, dict[str, object]] = {}
    calls(url, token, 100, concurrency)  # warm-up: connections, the processor's first calls
    for _ in range(args.rounds):
        for setting in SETTINGS:
            set_mirror(installation, setting)
            seen[setting] += calls(url, token, args.calls, concurrency)
            if setting != "off":
                counters = installation.client.shadow("bench_live", limit=0).counters
                total = copies.setdefault(setting, {"sent": 0, "answered": 0, "dropped": 0})
                total["sent"] = int(str(total["sent"])) + counters.mirrored
                total["answered"] = int(str(total["answered"])) + counters.compared
                total["dropped"] = int(str(total["dropped"])) + sum(counters.dropped.values())
    set_mirror(installation, "off")
    lines = [f"concurrency {concurrency}:"]
    base = statistics.median(seen["off"])
    for setting in SETTINGS:
        ms = sorted(x * 1000 for x in seen[setting])
        p50, p90, p99 = (ms[min(len(ms) - 1, int(len(ms) * q))] for q in (0.5, 0.9, 0.99))
        label = {
            "off": "mirroring off",
            "same": "100% to an identical candidate",
            "slow": f"100% to a candidate taking {args.delay_ms:g} ms",
        }[setting]
        extra = ""
        if setting in copies:
            c = copies[setting]
            extra = (
                f"; copies sent {c['sent']}, answered by the end of each round "
                f"{c['answered']}, dropped {c['dropped']}"
            )
        overhead = statistics.median(seen[setting]) - base
        lines.append(
            f"  {label:<44} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  p99 {p99:6.2f} ms  "
            f"(p50 {overhead * 1000:+.2f} ms vs off; {len(ms)} calls){extra}"
        )
    return lines


def document(text: str, args: argparse.Namespace) -> str:
    command = "python -m bench.shadow " + " ".join(sys.argv[1:])
    return (
        "# bench.shadow: callers' latency with shadow traffic off and on\n\n"
        f"`{command.strip()}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, installation unpinned, callers on the "
        "same host.\n\n"
        f"```\n{text}\n```\n"
    )


if __name__ == "__main__":
    main()
