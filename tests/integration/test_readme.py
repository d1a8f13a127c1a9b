"""The README's tour runs as written, on the 2-core machine it targets: an installation of
one 2-core node beside the demo (what `make serve` starts), then every fenced command of
the tour in order, with the README's description unchanged.

Not run, and why:
- `make serve` and `make test` (first block): the long-running server itself — the test
  starts the same `eascmd server --demo` on free loopback ports instead — and the whole
  suite, which runs this test. Their presence is checked.
- `. .venv/bin/activate`: the tests already run in that environment; `eascmd` is the
  environment's `python -m eas_core.cli`.
- `eascmd logs NAME -f`: follows forever; `logs NAME` (its `[-f]` left out) runs.

Alternatives on one line (`eascmd ls | desc NAME | w NAME`) each run, in the order written,
except that `delete` runs last: after it the name no longer has logs or versions to show.
The tour leaves two files to the reader, written here: `new_model.json` (a processor that
answers otherwise) and `green.json` (the tour's description again).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.installation import (
    REPO,
    Installation,
    two_core_node_with_demo,
    wait_for,
)

NAME = "demo_py"


def blocks(language: str, text: str | None = None) -> list[str]:
    text = (REPO / "README.md").read_text() if text is None else text
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def tour_text() -> str:
    """The README's "A short tour" section, up to the next second-level heading (the
    reference sections after it — status codes, monitoring… — have tests of their own)."""
    text = (REPO / "README.md").read_text()
    start = text.index("\n## A short tour\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_starts_with_the_two_commands() -> None:
    first = blocks("bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make serve", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


def tour_commands() -> list[list[str]]:
    """The commands of the tour's bash blocks, in order, as argument lists:
    comments dropped, `a | b | c` alternatives split, `[-y]` taken and `[-f]` left out."""
    commands: list[list[str]] = []
    for block in blocks("bash", tour_text()):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if not line or line.startswith(". "):
                continue
            program = line.split()[0]
            for part in line.split(" | "):
                words = shlex.split(part.replace("[-y]", "-y").replace("[-f]", ""))
                if words[0] not in ("eascmd", "curl"):
                    words = [program, *words]
                commands.append(words)
    return commands


@pytest.fixture(scope="module")
def two_cores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    with two_core_node_with_demo(tmp_path_factory.mktemp("tour") / "data") as running:
        yield running


def test_readme_tour_runs_command_by_command_on_two_cores(
    two_cores: Installation, tmp_path: Path
) -> None:
    processor, client_snippet = blocks("python")
    [description] = blocks("json")
    package = tmp_path / "my_processor"
    package.mkdir()
    (package / "app.py").write_text(processor)
    (tmp_path / "service.json").write_text(description)
    (tmp_path / "green.json").write_text(description)
    # new_model.json: the same processor with another bias, so "10 20" is answered False.
    changed = tmp_path / "my_processor_v2"
    changed.mkdir()
    (changed / "app.py").write_text(processor.replace("100, 2", "-100, 2"))
    (tmp_path / "new_model.json").write_text(json.dumps({"processor_path": str(changed)}))

    gateway = two_cores.gateway_url.removeprefix("http://")
    credentials = json.loads((two_cores.data_dir / "credentials.json").read_text())
    config = tmp_path / "eas.config"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EAS_")}
    environment["EAS_CONFIG"] = str(config)
    state: dict[str, str] = {}

    def substitute(word: str) -> str:
        word = word.replace("http://127.0.0.1:8000", two_cores.controller_url)
        word = word.replace("127.0.0.1:8080", gateway)
        word = word.replace("<AccessKeyId>", credentials["AccessKeyId"])
        word = word.replace("<AccessKeySecret>", credentials["AccessKeySecret"])
        word = word.replace("<token>", state.get("token", "<token>"))
        word = word.replace("NAME_xxxxxxxx", state.get("green", "NAME_xxxxxxxx"))
        return word.replace("NAME", NAME)

    def run(words: list[str]) -> subprocess.CompletedProcess[str]:
        words = [substitute(w) for w in words]
        if words[0] == "eascmd":
            words = [sys.executable, "-m", "eas_core.cli", *words[1:]]
        else:
            assert shutil.which(words[0]), f"{words[0]} is not installed"
        ran = subprocess.run(
            words,
            input="y\n",  # `release` and `delete` without -y ask to confirm
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=300,
        )
        assert ran.returncode == 0, f"{words}\n{ran.stdout}\n{ran.stderr}"
        return ran

    def answer() -> tuple[int, str]:
        called = httpx.post(
            f"{two_cores.gateway_url}/api/predict/{NAME}",
            content=b"10 20",
            headers={"Authorization": state["token"]},
            timeout=30,
        )
        return called.status_code, called.text

    commands = tour_commands()
    deleting = [c for c in commands if c[:2] == ["eascmd", "delete"]]
    assert len(deleting) == 1
    ran: list[str] = []
    for words in [c for c in commands if c not in deleting] + deleting:
        done = run(words)
        ran.append(" ".join(words[:2]))
        verb = words[1] if words[0] == "eascmd" else "curl"
        if verb == "create" and "-r" not in words:
            state["token"] = two_cores.client.describe_service(NAME)["AccessToken"]
            assert state["token"] in done.stdout
            # The SDK snippet, pointed at this installation.
            snippet = client_snippet.replace("127.0.0.1:8080", gateway).replace(
                "<token>", state["token"]
            )
            sdk = subprocess.run(
                [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60
            )
            assert sdk.stdout.strip() == "b'True'", sdk.stderr
        elif verb == "curl":
            assert done.stdout == "True"
        elif verb == "modify" and "-s" in words:
            assert answer() == (400, "False")
        elif verb == "modify":
            wait_for(
                lambda: two_cores.client.describe_service(NAME)["RunningInstance"] == 3,
                timeout=120,
                what="3 instances",
            )
        elif verb == "version":
            assert answer() == (200, "True")
        elif verb == "create":
            [green] = [
                s["ServiceName"]
                for s in two_cores.client.list_services()
                if s["ServiceName"].startswith(f"{NAME}_")
            ]
            state["green"] = green
        elif verb == "release":
            shown = two_cores.client.describe_service(state["green"])
            assert (shown["Weight"], shown["Released"]) == (20, True)
        elif verb == "start":
            two_cores.client.wait_until_running(NAME, timeout=120)
    assert ran == [
        "eascmd config",
        "eascmd create",
        "curl http://127.0.0.1:8080/api/predict/demo_py",
        "eascmd ls",
        "eascmd desc",
        "eascmd w",
        "eascmd modify",
        "eascmd modify",
        "eascmd version",
        "eascmd create",
        "eascmd release",
        "eascmd stop",
        "eascmd start",
        "eascmd logs",
        "eascmd versions",
        "eascmd delete",
    ]
    # Deleted with a released related service: its endpoint serves the related service.
    assert two_cores.client.describe_service(NAME)["Retired"]
