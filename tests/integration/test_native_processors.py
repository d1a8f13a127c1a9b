"""C/C++ and Java custom processors (processor_type cpp / java), built at test time with
gcc/g++ and javac from examples/ and tests/support/processors/native, deployed through a
real installation and called through the gateway and directly."""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eas_core.errors import InvalidDescription
from eas_core.sdk import (
    ENDPOINT_TYPE_DIRECT,
    PredictClient,
    PredictException,
    ServiceStatus,
    StringRequest,
)
from tests.support.installation import (
    REPO,
    Installation,
    free_port,
    start_installation,
    wait_for,
)

EXAMPLES = REPO / "examples"
PROBE = REPO / "tests" / "support" / "processors" / "native" / "probe.c"


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("eas-native") / "data"
    data_dir.mkdir()
    running = start_installation(data_dir)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every example and the probe, built into a copy of examples/ (the repository stays clean)."""
    root = tmp_path_factory.mktemp("native-build")
    shutil.copytree(EXAMPLES / "cpp", root / "cpp")
    shutil.copytree(EXAMPLES / "java", root / "java")
    for example in ("echo", "digits"):
        subprocess.run(["make", "-s"], cwd=root / "cpp" / example, check=True)
    for example in ("echo", "wordcount"):
        subprocess.run([str(root / "java" / example / "build.sh")], check=True)
    (root / "probe").mkdir()
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wall", "-o", str(root / "probe" / "libprobe.so"), PROBE],
        check=True,
    )
    return root


def native(name: str, kind: str, path: Path, *, instances: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "processor_type": kind,
        "processor_path": str(path),
        "metadata": {"instance": instances, "cpu": 0.1, "memory": 256},
        **extra,
    }


def deploy(installation: Installation, description: dict[str, Any]) -> str:
    installation.client.create_service(description)
    installation.client.wait_until_running(description["name"], timeout=120)
    return str(installation.client.describe_service(description["name"]).access_token)


def call(installation: Installation, name: str, token: str, body: bytes) -> tuple[int, bytes]:
    answer = installation.predict(name, body, token=token)
    return answer.status_code, answer.content


def test_cpp_probe_gets_its_model_and_maps_codes(
    installation: Installation, built: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("w")
    token = deploy(
        installation,
        native(
            "cpp_probe",
            "cpp",
            built / "probe",
            instances=2,
            processor_entry="libprobe.so",
            model_path=str(model),
            model_entry="weights.txt",
            model_config='{"threshold": 0.5}',
        ),
    )
    status, body = call(installation, "cpp_probe", token, b"hello")
    assert status == 200
    assert body.endswith(b'weights.txt config={"threshold": 0.5}')
    assert call(installation, "cpp_probe", token, b"code:200") == (200, b"custom answer")
    assert call(installation, "cpp_probe", token, b"code:404") == (404, b"custom answer")
    status, body = call(installation, "cpp_probe", token, b"code:599")
    assert status == 400
    assert body == b"processor returned 599, which is not an HTTP status: custom answer"

    # Direct, through the SDK: both instances answer.
    for direct in (False, True):
        predict = PredictClient(installation.gateway_url, "cpp_probe")
        predict.set_token(token)
        if direct:
            predict.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
        predict.init()
        try:
            pids = {
                predict.predict(StringRequest("who")).response_data.split()[0] for _ in range(8)
            }
            assert len(pids) == 2
            with pytest.raises(PredictException) as refused:
                predict.predict(StringRequest("code:12345"))
            assert refused.value.code == 400 and b"12345" in refused.value.message.encode()
        finally:
            predict.destroy()


def test_cpp_segfault_restarts_only_its_instance(installation: Installation, built: Path) -> None:
    token = deploy(
        installation,
        native("cpp_crash", "cpp", built / "probe", instances=2, processor_entry="libprobe.so"),
    )
    instances = installation.client.list_instances("cpp_crash")
    victim, other = instances
    victim_url = f"http://127.0.0.1:{victim.port}/api/predict/cpp_crash"
    other_url = f"http://127.0.0.1:{other.port}/api/predict/cpp_crash"
    with pytest.raises(httpx.HTTPError):
        httpx.post(victim_url, content=b"segv", headers={"Authorization": token}, timeout=10)
    # The other instance keeps answering while the crashed one comes back.
    for _ in range(5):
        answer = httpx.post(other_url, content=b"who", headers={"Authorization": token})
        assert answer.status_code == 200
    restarted = wait_for(
        lambda: next(
            (
                w
                for w in installation.client.list_instances("cpp_crash")
                if w.instance_name == victim.instance_name and w.restarts >= 1 and w.ready
            ),
            None,
        ),
        timeout=60,
        what="the crashed instance to restart",
    )
    assert "exited with code -11" in restarted.reason  # -SIGSEGV
    survivor = next(
        w
        for w in installation.client.list_instances("cpp_crash")
        if w.instance_name == other.instance_name
    )
    assert survivor.restarts == 0
    assert call(installation, "cpp_crash", token, b"who")[0] == 200


def test_cpp_initialize_state_fails_the_instance(installation: Installation, built: Path) -> None:
    installation.client.create_service(
        native(
            "cpp_refuse",
            "cpp",
            built / "probe",
            processor_entry="libprobe.so",
            model_config="refuse",
        )
    )
    info = wait_for(
        lambda: (
            (d := installation.client.describe_service("cpp_refuse")).status == ServiceStatus.FAILED
            and d
        ),
        timeout=60,
        what="the service to fail",
    )
    assert "initialize() in libprobe.so set state 7" in info.message
    assert "set state 7" in installation.client.list_instances("cpp_refuse")[0].reason
    shown = installation.eascmd("desc", "cpp_refuse").stdout
    assert "set state 7" in shown


def test_cpp_entry_missing_from_package_is_refused(installation: Installation, built: Path) -> None:
    with pytest.raises(InvalidDescription) as refused:
        installation.client.create_service(
            native("cpp_noentry", "cpp", built / "probe", processor_entry="libnothere.so")
        )
    assert "processor_entry: 'libnothere.so' is not in the package" in str(refused.value)
    assert "libprobe.so" in str(refused.value)


def test_cpp_examples(installation: Installation, built: Path, tmp_path: Path) -> None:
    model = tmp_path / "echo-model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"\0")
    echo = json.loads((EXAMPLES / "cpp" / "echo" / "service.json").read_text())
    echo |= {"processor_path": str(built / "cpp" / "echo"), "model_path": str(model)}
    token = deploy(installation, echo)
    assert call(installation, "cpp_echo", token, b"hi") == (200, b"hi\nmodel file: model.bin")
    assert call(installation, "cpp_echo", token, b"") == (400, b"input data should not be empty")

    # Digits: W[k] weighs only the pixels of row k, so an image whose row 3 is lit is a 3.
    weights = [1.0 if i // 28 == k else 0.0 for k in range(10) for i in range(784)]
    (tmp_path / "digits.bin").write_bytes(struct.pack("<7850f", *weights, *[0.0] * 10))
    digits = json.loads((EXAMPLES / "cpp" / "digits" / "service.json").read_text())
    digits |= {
        "processor_path": str(built / "cpp" / "digits"),
        "model_path": str(tmp_path / "digits.bin"),
    }
    token = deploy(installation, digits)
    image = bytearray(784)
    image[3 * 28 : 4 * 28] = b"\xff" * 28
    status, body = call(installation, "cpp_digits", token, bytes(image))
    assert status == 200
    answer = json.loads(body)
    assert answer["label"] == 3 and answer["probabilities"][3] > 0.5
    assert call(installation, "cpp_digits", token, b"short") == (
        400,
        b"expected 784 bytes (28x28 pixels), got 5",
    )


def test_java_manual_test_processor(installation: Installation, built: Path) -> None:
    echo = json.loads((EXAMPLES / "java" / "echo" / "service.json").read_text())
    echo["processor_path"] = str(built / "java" / "echo" / "processor.jar")
    token = deploy(installation, echo)
    status, body = call(installation, "java_echo", token, b"hello")
    assert status == 200
    assert body == b'model_entry= model_config={"greeting": "hello"}\nhello'
    # An exception thrown by Process answers 400 with its message.
    assert call(installation, "java_echo", token, b"") == (400, b"input data should not be empty")


def test_java_wordcount_from_an_archive_of_jars(
    installation: Installation, built: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "jars.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(built / "java" / "wordcount" / "wordcount.jar", "lib/wordcount.jar")
        tar.add(built / "java" / "echo" / "processor.jar", "lib/echo.jar")
    (tmp_path / "stopwords.txt").write_text("the\na\n")
    description = json.loads((EXAMPLES / "java" / "wordcount" / "service.json").read_text())
    description |= {"processor_path": str(archive), "model_path": str(tmp_path / "stopwords.txt")}
    token = deploy(installation, description)
    status, body = call(installation, "java_wordcount", token, b"The cat saw a cat")
    assert status == 200 and json.loads(body) == {"cat": 2, "saw": 1}
    assert call(installation, "java_wordcount", token, b"  ") == (
        400,
        b"the text to count is empty",
    )


def test_java_missing_mainclass_fails_with_its_name(
    installation: Installation, built: Path
) -> None:
    installation.client.create_service(
        native(
            "java_noclass",
            "java",
            built / "java" / "echo" / "processor.jar",
            processor_mainclass="com.example.Nowhere",
        )
    )
    info = wait_for(
        lambda: (
            (d := installation.client.describe_service("java_noclass")).status
            == ServiceStatus.FAILED
            and d
        ),
        timeout=60,
        what="the service to fail",
    )
    assert "processor_mainclass: 'com.example.Nowhere' is not in" in info.message


@pytest.mark.parametrize("kind", ["cpp", "java"])
def test_eascmd_test_serves_native_processors_in_the_foreground(
    built: Path, tmp_path: Path, kind: str
) -> None:
    # The manual's local-debug descriptions carry no metadata: `eascmd test` fills it.
    if kind == "cpp":
        description = {
            "name": "local_cpp",
            "processor_type": "cpp",
            "processor_path": str(built / "cpp" / "echo"),
            "processor_entry": "libpredictor.so",
            "model_path": str(built / "cpp" / "echo"),
        }
        expected = b"hello local"
    else:
        description = json.loads((EXAMPLES / "java" / "echo" / "service.json").read_text())
        description.pop("metadata", None)
        description["name"] = "local_java"
        description["processor_path"] = str(built / "java" / "echo" / "processor.jar")
        expected = b"\nhello local"
    path = tmp_path / "desc.json"
    path.write_text(json.dumps(description))
    port = free_port()
    command = [sys.executable, "-m", "eas_core.cli", "test", str(path), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/api/predict/{description['name']}"
        answer = wait_for(
            lambda: httpx.post(url, content=b"hello local", timeout=10),
            timeout=90,
            what=f"eascmd test serving the {kind} processor",
        )
        assert answer.status_code == 200, answer.text
        assert expected in answer.content
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert b"Service start successfully" in out
