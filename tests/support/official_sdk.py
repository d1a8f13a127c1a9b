"""The official PAI-EAS Python SDK (`eas-prediction` from PyPI) in a virtualenv of its own.

It pins protobuf<=3.20.3, which must not leak into the project's environment, so it lives in
`<repo>/.venv-easpred` (gitignored), built once and reused while it still imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.installation import REPO

SDK_VENV = REPO / ".venv-easpred"
SDK_PACKAGE = "eas-prediction"


class SDKInstallError(RuntimeError):
    """pip could not install the SDK; the message carries pip's output."""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _imports(venv: Path) -> bool:
    python = _python(venv)
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import eas_prediction"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def ensure_sdk_venv(venv: Path = SDK_VENV, timeout: float = 600) -> Path:
    """Return the SDK venv's python, building the venv first when it is missing or broken.

    It is built under a temporary name and renamed into place, so a concurrent run never
    sees a half-installed venv (only `python -m ...` is used, which survives the rename).
    """
    if _imports(venv):
        return _python(venv)
    building = venv.with_name(f"{venv.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        steps = [
            [sys.executable, "-m", "venv", str(building)],
            [str(_python(building)), "-m", "pip", "install", "--no-input", SDK_PACKAGE],
        ]
        for step in steps:
            try:
                done = _run(step, timeout)
            except subprocess.TimeoutExpired as exc:
                raise SDKInstallError(f"{' '.join(step)} ran past {timeout:g} s") from exc
            if done.returncode != 0:
                raise SDKInstallError(
                    f"{' '.join(step)} exited {done.returncode}\n"
                    f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
                )
        if not _imports(venv):  # another run may have finished first
            shutil.rmtree(venv, ignore_errors=True)
            building.rename(venv)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not _imports(venv):
        raise SDKInstallError(f"{SDK_PACKAGE} was installed into {venv} but does not import")
    return _python(venv)


# Written as a PAI-EAS user would: nothing here knows about OpenEAS. It prints one line,
# `RESULT <json>`, because the SDK's own logger writes to stdout too.
SDK_SCRIPT = """
import json, sys, time
from eas_prediction import ENDPOINT_TYPE_DIRECT, PredictClient, PredictException, StringRequest

endpoint, service, token = sys.argv[1:4]

def make_client(token, direct):
    client = PredictClient(endpoint, service)
    client.set_token(token)
    if direct:
        client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
    client.init()
    return client

def call(client, text):
    for attempt in range(3):  # the first discovery sync may lag init() (5 s wait each)
        try:
            resp = client.predict(StringRequest(text))
        except PredictException as exc:
            if "Get service backend timeout" in str(exc.message) and attempt < 2:
                time.sleep(1)
                continue
            message = exc.message
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            return {"error": exc.code, "message": str(message)}
        data = resp.response_data
        return {"type": type(resp).__name__, "data_type": type(data).__name__,
                "data": data.decode("utf-8", "replace") if isinstance(data, bytes) else data}

results = {}
for mode, direct in (("gateway", False), ("direct", True)):
    client = make_client(token, direct)
    results[mode] = [call(client, "echo:hello"), call(client, "echo:hello again")]
    if direct:
        results["direct_instances"] = sorted(
            "%s:%s" % (ep["ip"], ep["port"]) for ep, _ in client.endpoint.endpoints)
        results["direct_whoami"] = [call(client, "whoami") for _ in range(4)]
    client.destroy()
    bad = make_client(token + "-wrong", direct)
    results[mode + "_wrong_token"] = call(bad, "echo:hello")
    bad.destroy()
print("RESULT " + json.dumps(results))
"""


def run_sdk_script(
    python: Path, gateway_port: int, service: str, token: str, timeout: float = 120
) -> dict[str, Any]:
    """Run SDK_SCRIPT with the SDK venv's python; return its results (or fail with output)."""
    done = subprocess.run(
        [str(python), "-c", SDK_SCRIPT, f"127.0.0.1:{gateway_port}", service, token],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or len(lines) != 1:
        raise AssertionError(
            f"the SDK script exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    result: dict[str, Any] = json.loads(lines[0].removeprefix("RESULT "))
    return result
