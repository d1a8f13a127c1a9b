"""`python -m bench.sdk`: how fast the Python SDK calls a service, against wrk on the same one.

One echo instance (the demo processor on the instance runtime, pinned to CPU 0) and a
discovery endpoint in this process that names it; this process (pinned to CPU 1) is the
client. Each row runs for a bounded time and a bounded number of calls:

* wrk, one thread, ``--concurrency`` keep-alive connections — what the instance can answer;
* PredictClient in direct mode, ``--threads`` threads sharing one client;
* AsyncPredictClient in direct mode, ``--concurrency`` tasks sharing one client.

The service has a token, as deployed ones do: wrk sends it as it is, the SDK signs every
call with it (as the official SDK does). Every answer is checked. Reported: calls/s and
each SDK row's share of wrk's rate.

    python -m bench.sdk                            # 4 threads / 8 tasks, 3 s per row
    python -m bench.sdk --seconds 5 --threads 8 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from eas_core.sdk.predict import (
    DISCOVERY_PATH,
    ENDPOINT_TYPE_DIRECT,
    AsyncPredictClient,
    PredictClient,
    StringRequest,
)

SERVICE = "echo"
TOKEN = "bench-token"
PAYLOAD = b"hello"
MAX_SECONDS = 30.0
MAX_CALLS = 2_000_000
ECHO_APP = Path(__file__).resolve().parent.parent / "eas_core" / "demo" / "echo" / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def start_instance(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EAS_HOST": "127.0.0.1", "EAS_PORT": str(port)}
    env["EAS_SERVICE_NAME"] = SERVICE
    env["EAS_TOKEN"] = TOKEN
    process = subprocess.Popen(pinned(0, [sys.executable, str(ECHO_APP)]), env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /api/builtin/ready HTTP/1.1\r\nhost: x\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the echo instance was not ready on port {port} within 30 s")


def start_discovery(instance_port: int) -> ThreadingHTTPServer:
    """The gateway's discovery answer for one instance, enough for the direct mode."""
    document = json.dumps(
        {"endpoints": {"items": [{"ip": "127.0.0.1", "port": instance_port, "weight": 100}]}}
    ).encode()

    class Discovery(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the gateway

        def do_GET(self) -> None:
            found = self.path == DISCOVERY_PATH + SERVICE
            self.send_response(200 if found else 404)
            self.send_header("content-length", str(len(document) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(document)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wrk(port: int, connections: int, seconds: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{PAYLOAD.decode()}"\n'
            f'wrk.headers["Authorization"] = "{TOKEN}"\n'
        )
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name]
        out = subprocess.run(
            pinned(1, [*command, f"http://127.0.0.1:{port}/api/predict/{SERVICE}"]),
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None, out
    return float(rate.group(1))


def threaded(endpoint: str, threads: int, seconds: float, limit: int) -> float:
    client = PredictClient(endpoint, SERVICE)
    client.set_token(TOKEN)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()
    counts = [0] * threads
    deadline = time.monotonic() + seconds
    request = StringRequest(PAYLOAD)

    def load(index: int) -> None:
        done = 0
        while done < limit and time.monotonic() < deadline:
            if client.predict(request).response_data != PAYLOAD:
                raise SystemExit("wrong answer")
            done += 1
        counts[index] = done

    started = time.monotonic()
    workers = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    client.destroy()
    return sum(counts) / elapsed


async def concurrent(endpoint: str, tasks: int, seconds: float, limit: int) -> float:
    client = AsyncPredictClient(endpoint, SERVICE)
    client.set_token(TOKEN)
    client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    await client.init()
    request = StringRequest(PAYLOAD)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def load() -> int:
        done = 0
        while done < limit and loop.time() < deadline:
            if (await client.predict(request)).response_data != PAYLOAD:
                raise SystemExit("wrong answer")
            done += 1
        return done

    started = loop.time()
    counts = await asyncio.gather(*(load() for _ in range(tasks)))
    elapsed = loop.time() - started
    await client.destroy()
    return sum(counts) / elapsed


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help=f"per row, ≤ {MAX_SECONDS:g}")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing PredictClient")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections, async tasks")
    parser.add_argument("--max-calls", type=int, default=200_000, help="per thread or task")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("python -m bench.sdk needs wrk (apt-get install -y wrk)")
    seconds = min(args.seconds, MAX_SECONDS)
    limit = min(args.max_calls, MAX_CALLS)
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the client side shares CPU 1 with wrk's rows
    port = free_port()
    instance = start_instance(port)
    discovery = start_discovery(port)
    endpoint = f"127.0.0.1:{discovery.server_address[1]}"
    try:
        wrk(port, args.concurrency, 1)  # warm-up
        base = wrk(port, args.concurrency, seconds)
        rows = [(f"wrk -t1 -c{args.concurrency}", base)]
        rows.append(
            (
                f"PredictClient ×{args.threads} threads",
                threaded(endpoint, args.threads, seconds, limit),
            )
        )
        rate = asyncio.run(concurrent(endpoint, args.concurrency, seconds, limit))
        rows.append((f"AsyncPredictClient ×{args.concurrency} tasks", rate))
        print(f"{'client':<32} {'calls/s':>8} {'of wrk':>7}")
        for name, value in rows:
            print(f"{name:<32} {value:>8.0f} {value / base:>7.0%}")
    finally:
        discovery.shutdown()
        instance.send_signal(signal.SIGTERM)
        instance.wait(15)


if __name__ == "__main__":
    main(sys.argv[1:])
