"""The ``parameter_sever`` processor (sparse LR) on a model of 2 million weights generated at
test time; scores compared with a dense numpy computation. Its memory is the files' size
once: not per thread, not per worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from processors.base import ProcessorLoadError
from processors.builtin.sparse_lr import IDS_FILE, WEIGHTS_FILE, main
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.tabular_models import checker, sparse_expected, sparse_model

WEIGHTS = 2_000_000
MiB = 2**20


def model_size(path: Path) -> int:
    return (path / IDS_FILE).stat().st_size + (path / WEIGHTS_FILE).stat().st_size


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, float]:
    return sparse_model(tmp_path_factory.mktemp("sparse"), WEIGHTS)


def sample(count: int, seed: int, dense_len: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [
        {str(int(i)): float(rng.integers(1, 3)) for i in rng.integers(0, dense_len + 50, 30)}
        for _ in range(count)
    ]


def test_two_million_weights_pass_the_contract(model: tuple[Path, np.ndarray, float]) -> None:
    path, dense, bias = model
    records = [{"0": 1, "3": 1}, {"0": 1, "6": 0.5, "7": 1}, *sample(6, 1, len(dense))]
    assert model_size(path) >= WEIGHTS * 16
    for code in ("parameter_sever", "parameter_server"):
        check_contract(
            Case(
                code=code,
                model_entry=str(path),
                request=json.dumps(records).encode(),
                check=checker(sparse_expected(records, dense, bias)),
                bad_requests=[
                    (b"[{1: 2}]", "the body must be JSON"),
                    (b'[{"x1": 1}]', "feature id 'x1' is not a non-negative integer"),
                    (b'[{"-3": 1}]', "feature id '-3'"),
                    (b'[{"3": "one"}]', "feature '3': expected a number, got a string"),
                    (b"[[1, 2]]", "record 0: expected an object of feature id"),
                ],
            )
        )


def test_one_record_gets_one_number_and_get_describes(
    model: tuple[Path, np.ndarray, float],
) -> None:
    path, dense, bias = model
    processor = load(Case("parameter_sever", str(path), b"", lambda _: None))
    body, status = call(processor, b'{"3": 2}')
    assert status == 200
    checker(sparse_expected([{"3": 2}], dense, bias)[0])(body)
    described = json.loads(call(processor, b"", context(method="GET"))[0])
    assert (described["weights"], described["bias"]) == (WEIGHTS, bias)


def test_threads_share_one_mapping_of_the_model(model: tuple[Path, np.ndarray, float]) -> None:
    path, dense, _ = model
    size = model_size(path)
    # Feature ids 128 apart (1 KiB apart in each file), in slices: every page is read.
    ids = np.arange(0, len(dense), 3 * 128)
    bodies = [
        json.dumps([{str(int(i)): 1 for i in chunk}]).encode() for chunk in np.array_split(ids, 200)
    ]
    me = psutil.Process()
    before = me.memory_info().rss
    processor = load(Case("parameter_sever", str(path), b"", lambda _: None))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: call(processor, b), bodies))
    assert all(status == 200 for _, status in answers)
    grown = me.memory_info().rss - before
    # The file is resident once, in one mapping (a copy per thread would be 8 × its size);
    # the rest of the growth is the threads' own parsing of these large requests.
    files = {str(path / IDS_FILE), str(path / WEIGHTS_FILE)}
    mapped = [m for m in me.memory_maps(grouped=False) if m.path in files]
    assert len(mapped) == 2, mapped  # one mapping of each file, whatever the thread count
    assert 0.9 * size < sum(m.rss for m in mapped) <= 1.01 * size, mapped
    assert grown < 2 * size, (grown / MiB, size / MiB)


CHILD = """
import json, sys, numpy as np, psutil
from processors.builtin.sparse_lr import SparseLRProcessor
from processors.base import RequestContext
PAGE_STRIDE = 3 * 128  # ids 128 apart: 1 KiB apart in each file, so every page is read
me = psutil.Process()
before = me.memory_full_info()
p = SparseLRProcessor()
p.load(sys.argv[1], "")
end = int(sys.argv[2])
step = end // 100 + 1
for start in range(0, end, step):  # a slice at a time: no array of every id
    record = {str(i): 1 for i in range(start, min(start + step, end), PAGE_STRIDE)}
    body, status = p.process(json.dumps([record]).encode(), RequestContext("s", "/"))
    assert status == 200, body
print(json.dumps({"rss": before.rss, "uss": before.uss}), flush=True)
sys.stdin.read()  # stay alive, mapped, until the test has measured both processes
"""


def test_worker_processes_share_the_page_cache(model: tuple[Path, np.ndarray, float]) -> None:
    path, dense, _ = model
    size = model_size(path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(len(dense))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        before: list[dict[str, Any]] = [json.loads(c.stdout.readline()) for c in children]  # type: ignore[union-attr]
        after = [psutil.Process(c.pid).memory_full_info() for c in children]
    finally:
        for c in children:
            c.communicate("", timeout=30)
    for b, a in zip(before, after, strict=True):
        # Each process has the whole model resident ...
        assert a.rss - b["rss"] > 0.8 * size, ((a.rss - b["rss"]) / MiB, size / MiB)
        # ... but none of it privately: the pages are the page cache's, shared by both.
        assert a.uss - b["uss"] < 0.25 * size, ((a.uss - b["uss"]) / MiB, size / MiB)


def test_converted_text_file_scores_like_the_weights_it_holds(tmp_path: Path) -> None:
    path, dense, bias = sparse_model(tmp_path, 20_000, seed=8, through_text=True)
    records = sample(5, 2, len(dense))
    check_contract(
        Case("parameter_sever", str(path), json.dumps(records).encode(),
             checker(sparse_expected(records, dense, bias)))
    )  # fmt: skip


def test_converter_refuses_a_feature_given_twice(tmp_path: Path) -> None:
    text = tmp_path / "w.txt"
    text.write_text("# id weight\n1 0.5\nbias 0.1\n7 -1\n1 0.25\n")
    with pytest.raises(SystemExit):
        main([str(text), str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()
    text.write_text("7 -1e-3  # comment\nbias 0.1\n\n1 0.5\n")
    main([str(text), str(tmp_path / "m")])
    assert np.load(tmp_path / "m" / IDS_FILE).tolist() == [-1, 1, 7]
    assert np.load(tmp_path / "m" / WEIGHTS_FILE).tolist() == [0.1, 0.5, -0.001]


def write(directory: Path, ids: np.ndarray, weights: np.ndarray) -> Path:
    directory.mkdir(exist_ok=True)
    np.save(directory / IDS_FILE, ids)
    np.save(directory / WEIGHTS_FILE, weights)
    return directory


@pytest.mark.parametrize(
    ("ids", "weights", "reason"),
    [
        (np.array([1.0, 2.0]), np.array([1.0, 2.0]), "expected 1-D integers"),
        (np.array([1, 2]), np.array([1, 2]), "expected 1-D floats"),
        (np.array([5, 2]), np.array([1.0, 2.0]), "ids must be sorted ascending"),
        (np.array([1, 2, 3]), np.array([1.0, 2.0]), "has 3 ids but weights.npy 2 weights"),
    ],
)
def test_a_model_of_the_wrong_layout_fails_to_load(
    tmp_path: Path, ids: np.ndarray, weights: np.ndarray, reason: str
) -> None:
    write(tmp_path / "model", ids, weights)
    with pytest.raises(ProcessorLoadError, match=reason):
        load(Case("parameter_sever", str(tmp_path / "model"), b"", lambda _: None))


def test_files_that_are_not_npy_fail_to_load(tmp_path: Path) -> None:
    model = write(tmp_path / "model", np.array([1]), np.array([1.0]))
    (model / WEIGHTS_FILE).write_text("1 0.5\n2 0.25\n")
    with pytest.raises(ProcessorLoadError, match=r"weights\.npy is not a NumPy \.npy file"):
        load(Case("parameter_sever", str(model), b"", lambda _: None))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.pmml").write_text("<PMML/>")
    with pytest.raises(ProcessorLoadError, match=r"no sparse LR file \(\*feature_ids.npy\)"):
        load(Case("parameter_sever", str(tmp_path / "other"), b"", lambda _: None))
