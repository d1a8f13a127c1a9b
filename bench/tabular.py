"""The tabular processors in-process: load time, per-request latency and memory on their test
models (the models tests/processors builds).

    python -m bench.tabular                       # every processor, 2000 requests each
    python -m bench.tabular --requests 500 --output /tmp/tabular.md

Each processor runs in a fresh Python process of its own — what an instance holds besides
its HTTP server: the framework imported, the model loaded. It answers one-record requests
(the smallest, commonest call) one at a time from 1 thread, then from 8 threads at once (an
instance's worker threads), then 16 requests as one ``process_batch``. RSS is the process's
(and its children's) after the runs. Every answer is checked to be 200.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH / "results" / "tabular-processors.md"
CODES = ("pmml", "sklearn", "xgboost", "lightgbm", "parameter_sever")
SPARSE_WEIGHTS = 2_000_000


def make_models(directory: Path) -> dict[str, tuple[str, bytes, str]]:
    """code → (model entry, one-record request, what the model is)."""
    import joblib
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bench.tabular_models import heart_pmml, records, sparse_model

    path, _, frame = heart_pmml(directory)
    heart = json.dumps(records(frame.iloc[:1])).encode()
    iris = load_iris(as_frame=True)
    iris_row = json.dumps(records(iris.data.iloc[:1])).encode()
    sklearn_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    joblib.dump(sklearn_model.fit(iris.data, iris.target), directory / "iris.joblib")
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 4},
                        xgb.DMatrix(iris.data, iris.target), 100)  # fmt: skip
    booster.save_model(directory / "iris-xgb.json")
    lgbm = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                      "min_data_in_leaf": 5}, lgb.Dataset(iris.data, iris.target), 100)  # fmt: skip
    lgbm.save_model(directory / "iris-lgbm.txt")
    sparse, _, _ = sparse_model(directory, SPARSE_WEIGHTS)
    rng = np.random.default_rng(0)
    sparse_row = json.dumps([{str(int(i)): 1 for i in rng.integers(0, 3 * SPARSE_WEIGHTS, 50)}])
    sparse_what = f"sparse LR, {SPARSE_WEIGHTS:,} weights, 50 features per record"
    return {
        "pmml": (str(path), heart, "heart disease: 13 inputs, one-hot, scaling, logistic reg."),
        "sklearn": (str(directory / "iris.joblib"), iris_row, "iris: scaling, logistic reg."),
        "xgboost": (str(directory / "iris-xgb.json"), iris_row, "iris: 100 rounds × 3, depth 4"),
        "lightgbm": (str(directory / "iris-lgbm.txt"), iris_row, "iris: 100 rounds × 3 classes"),
        "parameter_sever": (str(sparse), sparse_row.encode(), sparse_what),
    }


def measure(code: str, entry: str, body: bytes, requests: int) -> dict[str, Any]:
    import psutil

    from processors import registry
    from processors.base import RequestContext

    ctx = RequestContext("bench", "/api/predict/bench")
    started = time.perf_counter()
    processor = registry.create(code)
    processor.load(entry, "")
    load_s = time.perf_counter() - started

    def one(_: int) -> float:
        began = time.perf_counter()
        answer, status = processor.process(body, ctx)
        assert status == 200, answer
        return time.perf_counter() - began

    for i in range(min(100, requests)):  # warm-up
        one(i)
    result: dict[str, Any] = {"code": code, "load_s": load_s}
    for threads in (1, 8):
        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            latencies = sorted(t * 1000 for t in pool.map(one, range(requests)))
        result[f"t{threads}"] = {
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
            "per_s": requests / (time.perf_counter() - began),
        }
    batch = getattr(processor, "process_batch", None)
    if batch is not None:
        rounds = max(requests // 16, 1)
        began = time.perf_counter()
        for _ in range(rounds):
            assert all(s == 200 for _, s in batch([body] * 16, [ctx] * 16))
        result["batch16_ms_per_request"] = (time.perf_counter() - began) * 1000 / (rounds * 16)
    me = psutil.Process()
    rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
    result["rss_mib"] = rss / 2**20
    return result


def instance_rss(models: dict[str, tuple[str, bytes, str]], requests: int) -> dict[str, float]:
    """code → RSS (MiB) of a real instance serving it: an installation of its own, each
    processor deployed from a description naming only processor and model_path, then called
    ``requests`` times through the gateway; the instance is the process listening on its
    port."""
    import httpx
    import psutil

    from bench.installation import start

    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        installation = start(data_dir, cpus=None)
        try:
            client = installation.client
            for code in CODES:
                entry, body, _ = models[code]
                name = f"bench_{code}"
                client.create_service(
                    {"name": name, "processor": code, "model_path": entry,
                     "metadata": {"instance": 1, "cpu": 1, "memory": 1024}}
                )  # fmt: skip
                client.wait_until_running(name, timeout=180)
                token = client.describe_service(name).access_token
                with httpx.Client(timeout=30) as http:
                    for _ in range(requests):
                        answer = http.post(
                            f"{installation.gateway_url}/api/predict/{name}",
                            content=body,
                            headers={"Authorization": token},
                        )
                        assert answer.status_code == 200, answer.text
                [instance] = client.list_instances(name)
                [pid] = {
                    c.pid
                    for c in psutil.net_connections("tcp")
                    if c.laddr and c.laddr.port == instance.port and c.status == "LISTEN"
                }
                rss[code] = psutil.Process(pid).memory_info().rss / 2**20
                client.delete_service(name)
                client.wait_until_deleted(name, timeout=60)
        finally:
            installation.stop()
    return rss


def report(results: list[dict[str, Any]], models: dict[str, tuple[str, bytes, str]],
           command: str, requests: int) -> str:  # fmt: skip
    lines = [
        "# Tabular processors in-process",
        "",
        "| processor | model | load s | 1 thread p50 ms | p99 ms | req/s "
        "| 8 threads req/s | batch of 16: ms/request | RSS MiB | instance RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        one, eight = r["t1"], r["t8"]
        lines.append(
            f"| {r['code']} | {models[r['code']][2]} | {r['load_s']:.2f} | {one['p50_ms']:.3f} "
            f"| {one['p99_ms']:.3f} | {one['per_s']:,.0f} | {eight['per_s']:,.0f} "
            f"| {r.get('batch16_ms_per_request', float('nan')):.3f} | {r['rss_mib']:.0f} "
            f"| {r.get('instance_rss_mib', float('nan')):.0f} |"
        )
    load = os.getloadavg()
    lines += [
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"- machine: nproc {os.cpu_count()}, {platform.machine()}, load average before the "
        f"runs {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; python {platform.python_version()}",
        f"- each processor in a fresh process: {requests} one-record requests from 1 thread, "
        f"then from 8 threads, after 100 warm-up requests; then process_batch of 16 requests",
        "- load: import of the framework + model load (PMML: JVM start included); RSS: that "
        "process after the runs; instance RSS: a real instance of an installation serving the "
        "same model (runtime, HTTP server, 5 worker threads) after 200 requests through the "
        "gateway",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--child", nargs=3, metavar=("CODE", "ENTRY", "BODY_FILE"))
    args = parser.parse_args()
    if args.child:
        code, entry, body_file = args.child
        print(json.dumps(measure(code, entry, Path(body_file).read_bytes(), args.requests)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp))
        results = []
        for code in CODES:
            entry, body, _ = models[code]
            body_file = Path(tmp) / f"{code}.body"
            body_file.write_bytes(body)
            out = subprocess.run(
                [sys.executable, "-m", "bench.tabular", "--requests", str(args.requests),
                 "--child", code, entry, str(body_file)],
                check=True, capture_output=True, text=True, timeout=600,
            ).stdout  # fmt: skip
            results.append(json.loads(out.strip().splitlines()[-1]))
        for code, mib in instance_rss(models, 200).items():
            next(r for r in results if r["code"] == code)["instance_rss_mib"] = mib
    command = "python -m bench.tabular " + " ".join(sys.argv[1:])
    text = report(results, models, command.strip(), args.requests)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
