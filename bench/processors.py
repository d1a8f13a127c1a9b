"""Benchmark of the tensor processors on the models of examples/<processor>/.

    python -m bench.processors                         # every processor whose extra is installed
    python -m bench.processors --only onnx,caffe --requests 200 --output /tmp/p.md

For each processor, measured twice:

- in-process, in a fresh interpreter: the time to import the framework and load the model
  (``registry.create`` + ``load``), the process RSS after loading, and the latency of
  ``process`` on a one-row request (sequential calls, after 20 warm-up calls);
- deployed on an installation of its own (temp dir): cold start (``create`` → Running, as
  ``eascmd create`` waits for it), the latency of the same request through the gateway and
  direct to the instance (sequential, keep-alive, with the token), and the instance's RSS.

Every loop is bounded by ``--requests``. Only 127.0.0.1 is ever called.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.installation import REPO, start

BENCH = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH / "results" / "tensor-processors.md"
EXAMPLES = REPO / "examples"
# example → (module of its framework, model path its make_model.py is given)
EXAMPLE_MODELS = {
    "tensorflow": ("tensorflow", "model"),
    "pytorch": ("torch", "model.pt"),
    "onnx": ("onnxruntime", "model.onnx"),
    "caffe": ("cv2", "model"),
}


def request_body(example: str) -> bytes:
    """A one-row request for the example's model."""
    if example == "onnx":
        return b'{"inputs": {"x": [[1, 2, 3, 4]]}}'
    if example == "caffe":
        from processors.wire import caffe_pb2

        message = caffe_pb2.PredictRequest(input_name=["data"])
        message.input_data.add(shape=caffe_pb2.ArrayShape(dim=[1, 4]), data=[1, 2, 3, 4])
        return message.SerializeToString()
    from eas_core.sdk import TFRequest, TorchRequest

    if example == "tensorflow":
        tf_request = TFRequest("predict_images")
        tf_request.add_feed("images", [1, 4], TFRequest.DT_FLOAT, [1, 2, 3, 4])
        return tf_request.to_string()
    torch_request = TorchRequest()
    torch_request.add_feed(0, [1, 4], TorchRequest.DT_FLOAT, [1, 2, 3, 4])
    return torch_request.to_string()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def in_process(code: str, model: str, config: str, body: bytes, requests: int) -> dict[str, Any]:
    """Run in a fresh interpreter (``--one``): nothing else is imported or warm."""
    started = time.perf_counter()
    from processors import registry
    from processors.base import RequestContext

    processor = registry.create(code)
    processor.load(model, config)
    loaded = time.perf_counter() - started
    rss = psutil.Process().memory_info().rss
    ctx = RequestContext("bench", "/api/predict/bench")
    for _ in range(20):
        assert processor.process(body, ctx)[1] == 200
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        processor.process(body, ctx)
        samples.append(time.perf_counter() - t0)
    return {"load_s": round(loaded, 2), "rss_mb": round(rss / 2**20), **percentiles(samples)}


def instance_rss(server_pid: int, port: int) -> int:
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if any(c.laddr.port == port and c.status == "LISTEN" for c in child.net_connections()):
                return int(child.memory_info().rss)
        except psutil.Error:
            continue
    return 0


def timed_calls(url: str, body: bytes, token: str, requests: int) -> dict[str, float]:
    samples = []
    with httpx.Client(timeout=30) as http:
        for index in range(requests + 20):
            t0 = time.perf_counter()
            answer = http.post(url, content=body, headers={"Authorization": token})
            if index >= 20:
                samples.append(time.perf_counter() - t0)
            answer.raise_for_status()
    return percentiles(samples)


def deployed(
    example: str, model: Path, body: bytes, requests: int, data_dir: Path
) -> dict[str, Any]:
    description = json.loads((EXAMPLES / example / "service.json").read_text())
    description["model_path"] = str(model)
    installation = start(data_dir, cpus=None)
    try:
        client = installation.client
        started = time.perf_counter()
        client.create_service(description)
        client.wait_until_running(description["name"], timeout=600)
        cold = time.perf_counter() - started
        token = client.describe_service(description["name"]).access_token
        instance = client.list_instances(description["name"])[0]
        direct = f"http://{instance.ip}:{instance.port}/api/predict/{description['name']}"
        gateway = f"{installation.gateway_url}/api/predict/{description['name']}"
        result: dict[str, Any] = {"cold_start_s": round(cold, 2)}
        result["gateway"] = timed_calls(gateway, body, token, requests)
        result["direct"] = timed_calls(direct, body, token, requests)
        rss = instance_rss(installation.process.pid, instance.port)
        result["instance_rss_mb"] = round(rss / 2**20)
        client.delete_service(description["name"])
        client.wait_until_deleted(description["name"], timeout=120)
        return result
    finally:
        installation.stop()


def run(example: str, requests: int, workdir: Path) -> dict[str, Any] | None:
    module, model_name = EXAMPLE_MODELS[example]
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        print(f"{example}: skipped ({module} is not installed)", file=sys.stderr)
        return None
    model = workdir / example / model_name
    model.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(EXAMPLES / example / "make_model.py"), str(model)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    description = json.loads((EXAMPLES / example / "service.json").read_text())
    config = description.get("model_config", "")
    config = config if isinstance(config, str) else json.dumps(config)
    body = request_body(example)
    body_file = workdir / example / "request.bin"
    body_file.write_bytes(body)
    one = subprocess.run(
        [sys.executable, "-m", "bench.processors", "--one", description["processor"],
         str(model), config, str(body_file), str(requests)],
        check=True, cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = {"code": description["processor"]}
    result["in_process"] = json.loads(one.stdout.strip().splitlines()[-1])
    result.update(deployed(example, model, body, requests, workdir / example / "eas"))
    print(f"{example}: {json.dumps(result)}", file=sys.stderr)
    return result


def report(results: dict[str, dict[str, Any]], requests: int) -> str:
    lines = [
        "# Tensor processors: load, cold start, latency, memory",
        "",
        f"Recorded {datetime.date.today().isoformat()} on {platform.node()} "
        f"({psutil.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GiB), "
        f"Python {platform.python_version()}; `python -m bench.processors "
        f"--requests {requests}`. Models: examples/<processor>/make_model.py; one-row requests, "
        "sequential. Latencies in ms (p50 / p99).",
        "",
        "| processor | code | load in-process (s) | RSS in-process (MB) | process() | "
        "cold start create→Running (s) | via gateway | direct | instance RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for example, r in results.items():
        p = r["in_process"]
        lines.append(
            f"| {example} | `{r['code']}` | {p['load_s']} | {p['rss_mb']} | "
            f"{p['p50_ms']} / {p['p99_ms']} | {r['cold_start_s']} | "
            f"{r['gateway']['p50_ms']} / {r['gateway']['p99_ms']} | "
            f"{r['direct']['p50_ms']} / {r['direct']['p99_ms']} | {r['instance_rss_mb']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(EXAMPLE_MODELS))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--one", nargs=5, metavar=("CODE", "MODEL", "CONFIG", "BODY", "N"))
    args = parser.parse_args()
    if args.one:
        code, model, config, body, count = args.one
        print(json.dumps(in_process(code, model, config, Path(body).read_bytes(), int(count))))
        return
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-processors-") as tmp:
        for example in args.only.split(","):
            result = run(example, args.requests, Path(tmp))
            if result is not None:
                results[example] = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report(results, args.requests))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
