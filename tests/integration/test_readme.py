"""The README's tour runs as written: its processor and its description deploy and answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.installation import REPO, Installation


def blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first = blocks("bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make serve", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_processor_and_description_deploy(
    installation: Installation, tmp_path: Path, cleanup: Callable[..., str]
) -> None:
    processor, client_snippet = blocks("python")
    [description] = blocks("json")
    package = tmp_path / "my_processor"
    package.mkdir()
    (package / "app.py").write_text(processor)
    document = json.loads(description)
    document["processor_path"] = str(package)
    document["name"] = cleanup("readme_tour")
    document["metadata"].update({"cpu": 0.1, "memory": 128})
    desc = tmp_path / "service.json"
    desc.write_text(json.dumps(document))
    created = installation.eascmd("create", str(desc))
    token = installation.client.describe_service("readme_tour").access_token
    assert token in created.stdout
    answer = installation.predict("readme_tour", b"10 20", token)
    assert (answer.status_code, answer.content) == (200, b"True")
    answer = installation.predict("readme_tour", b"10 200", token)
    assert (answer.status_code, answer.content) == (400, b"False")
    # The SDK snippet, pointed at this installation and this service.
    snippet = (
        client_snippet.replace("127.0.0.1:8080", installation.gateway_url)
        .replace('"demo_py"', '"readme_tour"')
        .replace("<token>", token)
    )
    ran = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert ran.stdout.strip() == "b'True'", ran.stderr
