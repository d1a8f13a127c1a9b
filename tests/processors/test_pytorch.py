"""The PyTorch processor: TorchScript modules scripted and traced at test time, answers
compared with the module's own in-process call, in-process and through a real installation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.base import ProcessorLoadError
from processors.wire import pytorch_predict_pb2 as pb
from processors.wire import tensors
from tests.processors import tensor_models as models
from tests.processors.contract import Case, call, check_contract, context, load
from tests.processors.service import BATCHED, deployed
from tests.support.installation import Installation, metric

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

CODE = "pytorch_cpu_1.6"
X = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models.torch_modules(tmp_path_factory.mktemp("torch"))


def request(
    *positional: Any, named: dict[str, Any] | None = None, fetch: tuple[int, ...] = ()
) -> bytes:
    message = pb.PredictRequest(output_filter=list(fetch))
    for index, value in enumerate(positional):
        tensors.fill(message.inputs.add(), value, f"input {index}")
    for name, value in (named or {}).items():
        tensors.fill(message.map_inputs[name], value, name)
    return message.SerializeToString()


def answer(body: bytes) -> tuple[list[Any], dict[str, Any]]:
    response = pb.PredictResponse.FromString(body)
    return (
        [tensors.to_array(o) for o in response.outputs],
        {k: tensors.to_array(v) for k, v in response.map_outputs.items()},
    )


def expected(path: Path, *args: Any) -> Any:
    module = torch.jit.load(str(path))
    with torch.inference_mode():
        return module(*[torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args])


def test_contract(modules: dict[str, Path]) -> None:
    want = expected(modules["mlp"], X).numpy()

    def check(body: bytes) -> None:
        outputs, named = answer(body)
        assert named == {} and len(outputs) == 1
        assert outputs[0].dtype == np.float32 and outputs[0].shape == (3, 3)
        np.testing.assert_allclose(outputs[0], want, atol=1e-5)

    check_contract(
        Case(
            code=CODE,
            model_entry=str(modules["mlp"]),
            request=request(X),
            check=check,
            bad_requests=[
                (b"\x0a\xff\xff", "malformed request body"),
                (request(X.astype(np.float64)), "the model could not run on these inputs"),
                (request(X[:, :3]), "the model could not run on these inputs"),
                (request(), "the request feeds no tensor"),
                (request(X, fetch=(3,)), "output_filter: index 3 is out of range"),
                (request(np.array([b"a"], dtype=object)), "input 0: DT_STRING tensors"),
            ],
        )
    )


def test_bad_shape_on_the_wire_names_the_input(modules: dict[str, Path]) -> None:
    message = pb.PredictRequest.FromString(request(X))
    message.inputs[0].array_shape.dim[0] = 4
    processor = load(Case(CODE, str(modules["mlp"]), b"", lambda _: None))
    body, status = call(processor, message.SerializeToString())
    assert status == 400 and b"input 0: shape [4, 4] needs 16 values, float_val holds 12" in body


def test_several_inputs_and_a_tuple_output(modules: dict[str, Path]) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    ids = np.array([1, 7], np.int64)
    first, second = expected(modules["multi"], x, ids)
    processor = load(Case(CODE, str(modules["multi"]), b"", lambda _: None))
    outputs, _ = answer(call(processor, request(x, ids))[0])
    np.testing.assert_allclose(outputs[0], first.numpy(), atol=1e-5)
    np.testing.assert_array_equal(outputs[1], second.numpy())
    assert outputs[1].dtype == np.int64
    # output_filter picks outputs by index, in the order asked.
    outputs, _ = answer(call(processor, request(x, ids, fetch=(1,)))[0])
    assert len(outputs) == 1
    np.testing.assert_array_equal(outputs[0], second.numpy())


def test_named_inputs_and_a_dict_output(modules: dict[str, Path]) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, np.float32)
    want = expected(modules["named"], a, b)
    processor = load(Case(CODE, str(modules["named"]), b"", lambda _: None))
    for body in (request(a, named={"b": b}), request(named={"a": a, "b": b})):
        body, status = call(processor, body)
        assert status == 200, body
        outputs, named = answer(body)
        assert outputs == [] and set(named) == {"sum", "prod"}
        for key in named:
            np.testing.assert_allclose(named[key], want[key].numpy(), atol=1e-6)
    body, status = call(processor, request(a, named={"b": b}, fetch=(0,)))
    assert status == 400 and b"output_filter" in body and b"map_outputs" in body
    body, status = call(processor, request(named={"a": a, "c": b}))
    assert status == 400 and b"map_inputs" in body


def test_dict_argument_takes_map_inputs(modules: dict[str, Path]) -> None:
    price = np.array([1.5, 2.0], np.float32)
    count = np.array([3, 4], np.int64)
    want = expected(
        modules["dict_in"], {"price": torch.from_numpy(price), "count": torch.from_numpy(count)}
    )
    processor = load(Case(CODE, str(modules["dict_in"]), b"", lambda _: None))
    outputs, _ = answer(call(processor, request(named={"price": price, "count": count}))[0])
    np.testing.assert_allclose(outputs[0], want.numpy())


def test_batch_of_different_sizes_is_bit_identical(modules: dict[str, Path]) -> None:
    processor = load(Case(CODE, str(modules["mlp"]), b"", lambda _: None))
    bodies = [request(X[:1]), request(X), request(np.ones((2, 5), np.float32)), request(X[1:])]
    bodies.append(b"\xff")
    answers = processor.process_batch(bodies, [context()] * len(bodies))  # type: ignore[attr-defined]
    assert [status for _, status in answers] == [200, 200, 400, 200, 400]
    for index in (0, 1, 3):
        assert answers[index] == call(processor, bodies[index])


def test_batch_of_multi_input_calls(modules: dict[str, Path]) -> None:
    processor = load(Case(CODE, str(modules["multi"]), b"", lambda _: None))
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    ids = np.array([0, 5, 9], np.int64)
    bodies = [request(x[:1], ids[:1]), request(x, ids), request(x[:2], ids)]  # last: rows differ
    answers = processor.process_batch(bodies, [context()] * 3)  # type: ignore[attr-defined]
    for body, got in zip(bodies, answers, strict=True):
        assert got == call(processor, body)
    assert answers[2][1] == 400


def test_model_of_the_wrong_kind_is_refused_at_load(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), str(state))
    with pytest.raises(ProcessorLoadError, match=r"state\.pt is not a TorchScript model"):
        load(Case(CODE, str(state), b"", lambda _: None))
    (tmp_path / "other.pt").write_bytes(b"junk")
    with pytest.raises(ProcessorLoadError, match="name the TorchScript file in it"):
        load(Case(CODE, str(tmp_path), b"", lambda _: None))


def test_gpu_code_without_a_gpu_says_so(modules: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the GPU code loads (tests/processors/test_gpu.py)")
    with pytest.raises(ProcessorLoadError, match="pytorch_gpu code needs a GPU"):
        load(Case("pytorch_gpu_1.6", str(modules["mlp"]), b"", lambda _: None))


def test_deployed_through_the_installation(
    installation: Installation, unique_name: str, modules: dict[str, Path]
) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    ids = np.array([2, 3], np.int64)
    first, second = expected(modules["multi"], x, ids)
    with deployed(installation, unique_name, CODE, modules["multi"]) as service:
        for direct in (False, True):
            got = service.post(request(x, ids), direct=direct)
            assert got.status_code == 200, got.text
            outputs, _ = answer(got.content)
            np.testing.assert_allclose(outputs[0], first.numpy(), atol=1e-5)
            np.testing.assert_array_equal(outputs[1], second.numpy())
            bad = service.post(b"\x0a\xff", direct=direct)
            assert bad.status_code == 400 and "malformed request body" in bad.text
            assert service.post(request(x, ids), direct=direct).content == got.content


def test_batched_service_answers_bit_identically_to_unbatched(
    installation: Installation, unique_name: str, modules: dict[str, Path]
) -> None:
    alone = load(Case(CODE, str(modules["mlp"]), b"", lambda _: None))
    bodies = [
        request(X[:1]),
        request(X),
        request(np.ones((2, 5), np.float32)),
        request(X[1:]),
        request(-X),
        request(X[2:] * 3),
    ]
    with deployed(installation, unique_name, CODE, modules["mlp"], metadata=BATCHED) as service:
        answers = service.together(bodies, direct=True)
        for body, got in zip(bodies, answers, strict=True):
            assert (got.content, got.status_code) == call(alone, body)
        assert [a.status_code for a in answers] == [200, 200, 400, 200, 200, 200]
        url = f"{service.direct}/api/builtin/metrics"
        assert metric(url, "eas_batch_size_sum", service=unique_name) == len(bodies)
        assert metric(url, "eas_batch_size_count", service=unique_name) < len(bodies)
