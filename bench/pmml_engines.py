"""Two PMML engines on the heart-disease model: JPMML (jpmml-evaluator over JPype, a JVM in
the process) and PyPMML (a JVM child process spoken to over py4j's socket).

    python -m bench.pmml_engines                 # trains the example model, both engines
    python -m bench.pmml_engines --records 2000 --output /tmp/pmml.md

Each engine runs in a fresh Python process of its own (a JVM cannot be started twice in one
process, and each should pay its own start-up): load time (JVM start + model load), then the
latency of scoring one record at a time — the way the processor answers a request of one
record — from 1 thread and from 8 threads at once, then the resident memory of the process
and its JVM. Every answer is checked against scikit-learn's own ``predict_proba`` (1e-6).
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

import psutil

BENCH = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH / "results" / "pmml-engines.md"
ENGINES = ("jpmml", "pypmml")


def rss_mib(process: psutil.Process) -> float:
    """Resident memory of a process and all its children (PyPMML's JVM is a child)."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def load_engine(engine: str, path: Path) -> Any:
    """A function scoring one record dict, after loading the model."""
    if engine == "jpmml":
        from jpmml_evaluator import make_evaluator

        evaluator = make_evaluator(str(path), backend="jpype").verify()
        return evaluator.evaluate
    from pypmml import Model

    model = Model.fromFile(str(path))
    return model.predict


def measure(engine: str, path: Path, records: list[dict[str, float]], expected: list[float]) -> Any:
    started = time.perf_counter()
    score = load_engine(engine, path)
    load_s = time.perf_counter() - started

    def one(record: dict[str, float]) -> float:
        began = time.perf_counter()
        answer = score(dict(record))
        elapsed = time.perf_counter() - began
        return elapsed, float(answer["p_1"])

    for record in records[:50]:  # warm-up: JIT, class loading
        one(record)
    result: dict[str, Any] = {"engine": engine, "load_s": load_s}
    for threads in (1, 8):
        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(one, records))
        wall = time.perf_counter() - began
        for (_, p1), want in zip(answers, expected, strict=True):
            assert abs(p1 - want) < 1e-6, (engine, p1, want)
        latencies = sorted(a[0] * 1000 for a in answers)
        result[f"t{threads}"] = {
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
            "records_per_s": len(records) / wall,
        }
    result["rss_mib"] = rss_mib(psutil.Process())
    return result


def child(engine: str, path: Path, data: Path) -> None:
    payload = json.loads(data.read_text())
    print(json.dumps(measure(engine, path, payload["records"], payload["expected"])))


def make_model(directory: Path, count: int) -> tuple[Path, Path]:
    from examples.heart_disease.data import generate, records
    from examples.heart_disease.train import fit, frame, save

    matrix, labels = generate()
    model = fit(matrix, labels)
    path = save(model, directory / "heart_disease.pmml")
    sample, _ = generate(n=count, seed=7)
    expected = model.predict_proba(frame(sample))[:, 1].tolist()
    data = directory / "records.json"
    data.write_text(json.dumps({"records": records(sample), "expected": expected}))
    return path, data


def report(results: list[dict[str, Any]], command: str, count: int) -> str:
    lines = [
        "# PMML engines on the heart-disease model",
        "",
        "| engine | load s | 1 thread p50 ms | p99 ms | records/s "
        "| 8 threads p50 ms | p99 ms | records/s | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        one, eight = r["t1"], r["t8"]
        lines.append(
            f"| {r['engine']} | {r['load_s']:.2f} | {one['p50_ms']:.3f} | {one['p99_ms']:.3f} "
            f"| {one['records_per_s']:,.0f} | {eight['p50_ms']:.3f} | {eight['p99_ms']:.3f} "
            f"| {eight['records_per_s']:,.0f} | {r['rss_mib']:.0f} |"
        )
    load = os.getloadavg()
    lines += [
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"- machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"load average before the runs {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- python {platform.python_version()}; "
        + "; ".join(f"{p} {_version(p)}" for p in ("jpmml_evaluator", "JPype1", "pypmml")),
        f"- model: examples/heart_disease (13 inputs, one-hot + scaling + logistic regression, "
        f"exported by sklearn2pmml); {count} records scored one per call, answers checked "
        f"against scikit-learn's predict_proba (1e-6)",
        "- load: a fresh process's JVM start + model parse/verify; RSS: the process and its "
        "child processes (PyPMML's JVM) after the runs",
    ]
    return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "MODEL", "DATA"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path, data = make_model(Path(tmp), args.records)
        results = []
        for engine in ENGINES:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.pmml_engines",
                    "--child",
                    engine,
                    str(path),
                    str(data),
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    text = report(results, "python -m bench.pmml_engines " + " ".join(sys.argv[1:]), args.records)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
