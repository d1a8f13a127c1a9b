"""`eascmd pysdk init DIR` / `eascmd pysdk pack DIR`: a Python processor project, PAI-EAS's way.

``init`` makes DIR with ``app.py`` (a working processor), ``app.json`` (its deployment
description) and ``ENV`` — a virtual environment of its own with the allspark SDK in it (the
standard-library stub of ``eas_core.runtime.envstub``: OpenEAS itself is not installed there,
so what the project installs with ``ENV/bin/pip`` is all it depends on). ``ENV/bin/python
app.py`` serves it on port 8080 through this installation of OpenEAS. ``pack`` makes
``DIR.tar.gz`` with DIR's contents at its root, ready for ``processor_path``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import click

from eas_core.cli import output
from eas_core.errors import EASError
from eas_core.runtime.envstub import allspark as stub

STUB_PACKAGE = Path(stub.__file__).parent
# Written into the ENV's allspark by `init`: which interpreter has OpenEAS, so that
# `ENV/bin/python app.py` can serve locally. Machine-specific, so `pack` leaves it out.
LOCAL_RUNTIME_FILE = "_local.json"
VENV_TIMEOUT_S = 300

APP_TEMPLATE = '''\
# -*- coding: utf-8 -*-
"""A processor made by `eascmd pysdk init`. Try it:

    ENV/bin/python app.py &
    curl http://127.0.0.1:8080/api/predict/{name} -d '2 105'
"""
import allspark


class MyProcessor(allspark.BaseProcessor):
    def initialize(self):
        """Runs once when the service starts: load the model here
        (self.get_model_path() is the service's model_path, unpacked)."""
        self.weights = {{"w0": 100, "w1": 2}}

    def pre_process(self, data):
        x, y = data.split(b" ")
        return int(x), int(y)

    def post_process(self, data):
        return data.encode("utf8")

    def process(self, data):
        """Each request's body in, (response body, status code) out."""
        try:
            x, y = self.pre_process(data)
        except ValueError:
            return b"expected two integers separated by a space, e.g. '2 105'", 400
        y1 = self.weights["w1"] * x + self.weights["w0"]
        if y1 >= y:
            return self.post_process("True"), 200
        return self.post_process("False"), 400


if __name__ == "__main__":
    # worker_threads: how many requests are processed at once.
    runner = MyProcessor(worker_threads=10)
    runner.run()
'''


def _service_name(directory: Path) -> str:
    """A valid service name from the directory's name (letters, digits, underscores)."""
    name = re.sub(r"[^a-z0-9_]", "_", directory.resolve().name.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = "pysdk_" + name
    return name[:55]


def _purelib(python: Path) -> Path:
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(found.stdout.strip())


@click.group(name="pysdk", short_help="Make and pack a Python processor project.")
def pysdk() -> None:
    """Make (init) and pack (pack) a Python processor project with its own ENV."""


@pysdk.command(name="init")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--python",
    "interpreter",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The interpreter ENV is made from (default: the one running eascmd). Python 3.8+.",
)
@click.option(
    "--pip/--without-pip",
    default=True,
    show_default=True,
    help="Put pip in ENV, to install the project's dependencies with ENV/bin/pip.",
)
def init(directory: Path, interpreter: Path | None, pip: bool) -> None:
    """Make DIRECTORY with app.py, app.json and ENV (a virtual environment with allspark)."""
    taken = [n for n in ("app.py", "app.json", "ENV") if (directory / n).exists()]
    if taken:
        raise EASError(
            f"{directory}: already holds {', '.join(taken)}; pick a new directory or remove them"
        )
    directory.mkdir(parents=True, exist_ok=True)
    env = directory / "ENV"
    output.progress(f"Creating the Python environment {env}")
    command = [str(interpreter or sys.executable), "-m", "venv", "--copies", str(env)]
    if not pip:
        command.insert(-1, "--without-pip")
    made = subprocess.run(command, capture_output=True, text=True, timeout=VENV_TIMEOUT_S)
    if made.returncode != 0:
        shutil.rmtree(env, ignore_errors=True)
        raise EASError(f"could not create {env}: {(made.stderr or made.stdout).strip()}")
    site = _purelib(env / "bin" / "python")
    shutil.copytree(STUB_PACKAGE, site / "allspark", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "allspark" / LOCAL_RUNTIME_FILE).write_text(
        json.dumps({"openeas_python": sys.executable})
    )
    name = _service_name(directory)
    (directory / "app.py").write_text(APP_TEMPLATE.format(name=name))
    description = {
        "name": name,
        "processor_entry": "./app.py",
        "processor_type": "python",
        "processor_path": str(directory.resolve().with_name(directory.resolve().name + ".tar.gz")),
        "metadata": {"instance": 1, "cpu": 1, "memory": 2000},
    }
    (directory / "app.json").write_text(json.dumps(description, indent=4) + "\n")
    output.success(f"Made {directory}: app.py, app.json and ENV (allspark installed)")
    click.echo(f"Serve it here:  cd {directory} && ENV/bin/python app.py")
    click.echo(
        f"Then deploy:    eascmd pysdk pack {directory} && eascmd create {directory}/app.json"
    )


@pysdk.command(name="pack")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def pack(directory: Path) -> None:
    """Pack DIRECTORY (with its ENV) into DIRECTORY.tar.gz for processor_path."""
    root = directory.resolve()
    if not (root / "ENV" / "bin" / "python").exists():
        output.warning(f"{directory} has no ENV/bin/python: the service runs on OpenEAS's Python")
    target = root.with_name(root.name + ".tar.gz")

    def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(member.name).parts
        if "__pycache__" in parts or member.name.endswith("allspark/" + LOCAL_RUNTIME_FILE):
            return None
        return member

    output.progress(f"Creating package: {target}")
    with tarfile.open(target, "w:gz") as archive:
        for child in sorted(root.iterdir()):
            archive.add(child, arcname=child.name, filter=keep)
    output.success(f"Packed {directory} into {target} ({target.stat().st_size:,} bytes)")
