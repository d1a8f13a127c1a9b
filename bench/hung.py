"""What callers see when one instance's processor hangs: failed calls, and time to recover.

    python -m bench.hung                          # shipped defaults: 5 s deadline, 30 s bound
    python -m bench.hung --requests 200 --seconds 60 --hung-restart 30

Starts its own installation in a temp dir, deploys a two-instance service whose processor
never returns on the body ``hang`` (and answers its pid otherwise), then sends ``--requests``
calls through the gateway, paced evenly over ``--seconds`` from two callers. After a tenth
of them, every worker thread of one instance is handed ``hang`` (directly, on its port).
Prints the status codes the callers got, how many calls the hung instance answered, and when
(seconds after the hang) it was reported not ready, restarted and serving again. Everything
is bounded: the call count, the run time, and the installation is stopped at the end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.installation import start
from eas_core.sdk import Instance

PROCESSOR = """\
import os
import threading

import allspark

NEVER = threading.Event()


class Hangs(allspark.BaseProcessor):
    def process(self, data):
        if data == b"hang":
            NEVER.wait()
        return str(os.getpid()).encode(), 200


if __name__ == "__main__":
    Hangs(worker_threads=5).run()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--keepalive-ms", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=5, help="worker threads per instance")
    parser.add_argument("--hung-restart", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eas-bench-hung-") as tmp:
        run(Path(tmp), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    package = tmp / "processor"
    package.mkdir()
    (package / "app.py").write_text(PROCESSOR)
    data_dir = tmp / "data"
    data_dir.mkdir()
    installation = start(
        data_dir,
        cpus=None,  # not a throughput figure: the processes use the machine as they like
        extra_env={
            "EAS_HUNG_RESTART_SECONDS": str(args.hung_restart),
            # Quick restarts and drains, so that recovery shows the hang handling itself.
            "EAS_RESTART_BACKOFF_INITIAL": "0.5",
            "EAS_DRAIN_SECONDS": "1.0",
        },
    )
    try:
        client = installation.client
        client.create_service(
            {
                "name": "bench_hung",
                "processor_type": "python",
                "processor_path": str(package),
                "processor_entry": "app.py",
                "metadata": {
                    "instance": 2,
                    "cpu": 0.1,
                    "memory": 128,
                    "rpc.keepalive": args.keepalive_ms,
                    "rpc.worker_threads": args.threads,
                },
            }
        )
        client.wait_until_running("bench_hung", timeout=120)
        token = client.describe_service("bench_hung").access_token
        victim = client.list_instances("bench_hung")[0]
        report = measure(installation.gateway_url, client, token, victim, args)
    finally:
        installation.stop()
    for line in report:
        print(line)


def measure(
    gateway: str, client: Any, token: str, victim: Instance, args: argparse.Namespace
) -> list[str]:
    victim_url = f"http://127.0.0.1:{victim.port}"
    victim_pid = int(
        httpx.post(
            f"{victim_url}/api/predict/bench_hung", content=b"pid", headers={"Authorization": token}
        ).content
    )
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    per_caller = args.requests // 2
    pace = args.seconds / per_caller
    started = time.monotonic()
    events: dict[str, float] = {}  # what happened, seconds after the hang
    reason = ""

    def caller() -> None:
        with httpx.Client(timeout=args.keepalive_ms / 1000 + 30) as http:
            for i in range(per_caller):
                time.sleep(max(0.0, started + i * pace - time.monotonic()))
                try:
                    answer = http.post(
                        f"{gateway}/api/predict/bench_hung",
                        content=b"pid",
                        headers={"Authorization": token},
                    )
                    with lock:
                        answers.append((answer.status_code, answer.content))
                except httpx.HTTPError as exc:
                    with lock:
                        answers.append((0, repr(exc).encode()))

    def hang() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{victim_url}/api/predict/bench_hung",
                content=b"hang",
                headers={"Authorization": token},
                timeout=args.seconds + 60,
            )

    callers = [threading.Thread(target=caller, daemon=True) for _ in range(2)]
    for thread in callers:
        thread.start()
    time.sleep(args.seconds / 10)
    for _ in range(args.threads):
        threading.Thread(target=hang, daemon=True).start()
    hang_time = time.monotonic()
    deadline = hang_time + args.seconds + 30
    while time.monotonic() < deadline and "serving again" not in events:
        now = time.monotonic() - hang_time
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{victim_url}/api/builtin/ready", timeout=1)
            if ready.status_code == 503 and "not ready" not in events:
                events["not ready"] = now
        rows = [
            w
            for w in client.list_instances("bench_hung")
            if w.instance_name == victim.instance_name
        ]
        if rows and rows[0].restarts >= 1:
            events.setdefault("restarted", now)
            reason = rows[0].reason
            if rows[0].ready:
                events["serving again"] = now
        time.sleep(0.2)
    for thread in callers:
        thread.join(timeout=args.seconds + 60)
    codes = collections.Counter(status for status, _ in answers)
    from_victim = sum(
        1 for status, body in answers if status == 200 and body == str(victim_pid).encode()
    )
    failed = sum(n for status, n in codes.items() if status != 200)
    lines = [
        f"calls: {len(answers)} over {args.seconds:g} s, hang after {args.seconds / 10:g} s "
        f"({args.threads} threads, rpc.keepalive {args.keepalive_ms} ms, "
        f"EAS_HUNG_RESTART_SECONDS {args.hung_restart:g})",
        f"status codes: {dict(sorted(codes.items()))}",
        f"failed: {failed}",
        f"answered by the hung instance before the hang: {from_victim}",
    ]
    for name in ("not ready", "restarted", "serving again"):
        when = events.get(name)
        lines.append(
            f"{name}: " + (f"{when:.1f} s after the hang" if when is not None else "never")
        )
    if reason:
        lines.append(f"reason in `eascmd w`: {reason}")
    return lines


if __name__ == "__main__":
    main()
