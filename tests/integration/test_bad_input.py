"""Bad input is refused with an error naming what is wrong, and nothing is created or lost."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from eas_core.auth.keys import AccessKey, sign_request
from eas_core.errors import InvalidDescription, NotFound
from eas_core.sdk import ServiceStatus
from tests.support.installation import PROCESSORS, Installation, python_service


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe processor packed every supported way, plus broken and hostile archives."""
    root = tmp_path_factory.mktemp("archives")
    source = PROCESSORS / "probe"
    for name, mode in (
        ("probe.tar.gz", "w:gz"),
        ("probe.tgz", "w:gz"),
        ("probe.tar", "w"),
        ("probe.tar.bz2", "w:bz2"),
    ):
        with tarfile.open(root / name, mode) as tar:
            tar.add(source / "app.py", arcname="app.py")
    with zipfile.ZipFile(root / "probe.zip", "w") as z:
        z.write(source / "app.py", "app.py")
    (root / "corrupt.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 100)
    with tarfile.open(root / "escape.tar.gz", "w:gz") as tar:
        tar.add(source / "app.py", arcname="app.py")
        data = b"owned"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with tarfile.open(root / "linkout.tar.gz", "w:gz") as tar:
        tar.add(source / "app.py", arcname="app.py")
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with tarfile.open(root / "device.tar", "w") as tar:
        tar.add(source / "app.py", arcname="app.py")
        device = tarfile.TarInfo("null")
        device.type = tarfile.CHRTYPE
        device.devmajor, device.devminor = 1, 3
        tar.addfile(device)
    return root


@pytest.fixture(scope="module")
def http_server(archives: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(archives))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def services(installation: Installation) -> list[str]:
    """Services that exist and are not on their way out (other tests delete theirs)."""
    return sorted(
        s.service_name
        for s in installation.client.list_services()
        if s.status != ServiceStatus.DELETING
    )


@pytest.mark.parametrize(
    "archive", ["probe.tar.gz", "probe.tgz", "probe.tar", "probe.tar.bz2", "probe.zip"]
)
def test_processor_from_http_archive(
    installation: Installation, http_server: str, archive: str, unique_name: str
) -> None:
    document = python_service(unique_name, processor_path=f"{http_server}/{archive}")
    installation.client.create_service(document)
    installation.client.wait_until_running(unique_name, timeout=60)
    token = installation.client.describe_service(unique_name).access_token
    assert installation.predict(unique_name, b"echo:archived", token).content == b"archived"


def test_processor_from_uploaded_archive(
    installation: Installation, archives: Path, unique_name: str, workdir: Path
) -> None:
    uploaded = installation.eascmd("upload", str(archives / "probe.tar.gz")).stdout
    assert "[OK] Successfully uploaded file: eas://" in uploaded
    uri = uploaded.strip().rsplit(" ", 1)[1]
    model = workdir / "model.txt"
    model.write_text("model v1")
    model_uri = installation.eascmd_json("upload", str(model))["uri"]
    document = python_service(unique_name, processor_path=uri, model_path=model_uri)
    (workdir / "svc.json").write_text(json.dumps(document))
    installation.eascmd("create", str(workdir / "svc.json"))
    token = installation.client.describe_service(unique_name).access_token
    answer = json.loads(installation.predict(unique_name, b"whoami", token).content)
    assert answer["model"] == "model v1"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {
                "name": "Bad-Name",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1},
            },
            "name:",
        ),
        (
            {
                "name": "bad_types",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": "many"},
            },
            "metadata.instance:",
        ),
        (
            {
                "name": "bad_cpu",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "cpu": -1},
            },
            "metadata.cpu:",
        ),
        (
            {
                "name": "no_meta",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
            },
            "metadata:",
        ),
        (
            {"name": "unknown_code", "processor": "no_such_processor", "metadata": {"instance": 1}},
            "processor: unknown processor code 'no_such_processor'",
        ),
        (
            {
                "name": "no_entry",
                "processor_type": "python",
                "processor_path": "/x",
                "metadata": {"instance": 1},
            },
            "processor_entry:",
        ),
        (
            {
                "name": "too_big",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "cpu": 4096},
            },
            "metadata.cpu:",
        ),
        (
            {
                "name": "bad_group",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "resource": "nope"},
            },
            "metadata.resource:",
        ),
        (
            {
                "name": "bad_keepalive",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "rpc.keepalive": "soon"},
            },
            "metadata.rpc.keepalive:",
        ),
        (
            {
                "name": "missing_path",
                "processor_type": "python",
                "processor_path": "/definitely/not/here",
                "processor_entry": "app.py",
                "metadata": {"instance": 1},
            },
            "processor_path:",
        ),
        (
            {
                "name": "io_threads",
                "processor_type": "python",
                "processor_path": "/x",
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "rpc.io_threads": 4},
            },
            "metadata.rpc.io_threads: this installation's instances do their network I/O",
        ),
        ([1, 2, 3], "must be a JSON object"),
    ],
)
def test_invalid_description_names_the_field(
    installation: Installation, workdir: Path, document: object, expected: str
) -> None:
    before = services(installation)
    path = workdir / "bad.json"
    path.write_text(json.dumps(document))
    result = installation.eascmd("create", str(path), check=False)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert result.stderr.startswith("InvalidDescription:")
    assert services(installation) == before


def test_malformed_json_is_refused(installation: Installation, workdir: Path) -> None:
    path = workdir / "broken.json"
    path.write_text('{"name": "x", "metadata": ')
    result = installation.eascmd("create", str(path), check=False)
    assert result.returncode == 1 and "not valid JSON" in result.stderr
    # The same through the API directly, unsigned body bytes signed as they are.
    key = installation.client.key
    body = b'{"name": '
    headers = sign_request(AccessKey(key.id, key.secret), "POST", "/api/v1/services", "", body)
    answer = httpx.post(
        f"{installation.controller_url}/api/v1/services", content=body, headers=headers
    )
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["message"]


@pytest.mark.parametrize(
    ("archive", "expected"),
    [
        ("corrupt.tar.gz", "not a valid archive"),
        ("escape.tar.gz", "escaped.txt"),
        ("linkout.tar.gz", "escapes the target directory"),
        ("device.tar", "device, fifo or other special file"),
    ],
)
def test_hostile_or_corrupt_archive_is_refused(
    installation: Installation,
    http_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    unique_name: str,
    archive: str,
    expected: str,
) -> None:
    before = services(installation)
    # The package is unpacked once when the version is made: refused there, nothing stored,
    # rather than a service that fails again at every start of every instance.
    with pytest.raises(InvalidDescription) as refused:
        installation.client.create_service(
            python_service(unique_name, processor_path=f"{http_server}/{archive}")
        )
    assert refused.value.message.startswith("processor_path:"), refused.value.message
    assert expected in refused.value.message
    # `../../escaped.txt` unpacked anywhere under the installation's data directory would
    # land inside this session's temporary tree: nothing by that name was written there.
    assert not list(tmp_path_factory.getbasetemp().rglob("escaped.txt"))
    assert services(installation) == before
    with pytest.raises(NotFound):
        installation.client.describe_service(unique_name)


def test_missing_http_artefact_is_refused_at_create(
    installation: Installation, http_server: str, unique_name: str
) -> None:
    before = services(installation)
    with pytest.raises(Exception, match="404"):
        installation.client.create_service(
            python_service(unique_name, processor_path=f"{http_server}/nothing.tar.gz")
        )
    assert services(installation) == before


def test_wrong_access_key_is_refused(installation: Installation) -> None:
    headers = sign_request(AccessKey("LTEASNOPE", "secret"), "GET", "/api/v1/services", "", b"")
    answer = httpx.get(f"{installation.controller_url}/api/v1/services", headers=headers)
    assert answer.status_code == 401
    assert httpx.get(f"{installation.controller_url}/api/v1/services").status_code == 401
    key = installation.client.key
    stale = sign_request(
        AccessKey(key.id, key.secret),
        "GET",
        "/api/v1/services",
        "",
        b"",
        date="Mon, 01 Jan 2024 00:00:00 GMT",
    )
    assert (
        httpx.get(f"{installation.controller_url}/api/v1/services", headers=stale).status_code
        == 401
    )


def test_cli_errors_exit_non_zero_with_a_message(installation: Installation, workdir: Path) -> None:
    missing = installation.eascmd("desc", "no_such_service", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("NotFound:")
    no_file = installation.eascmd("create", str(workdir / "absent.json"), check=False)
    assert no_file.returncode == 1 and "no such file" in no_file.stderr
    bad_d = installation.eascmd("modify", "x", "-Dnovalue", check=False)
    assert bad_d.returncode == 1 and "KEY=VALUE" in bad_d.stderr
    unreachable = installation.eascmd("-e", "http://127.0.0.1:1", "ls", check=False)
    assert unreachable.returncode == 1 and "cannot reach the control API" in unreachable.stderr
