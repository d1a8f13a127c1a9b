"""The local backend's files: what it keeps of each instance on this machine's disk.

Each instance has a directory under ``<data_dir>/instances/<id>/`` holding its record
(``record.json``, rewritten atomically on every change), its boot spec (``boot.json``) and the
``reason`` file the runtime writes when it fails. The log lives in ``<data_dir>/logs/`` so it
outlives the instance. Records and boot specs carry the service token: directories are 0700,
files 0600, logs included.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)


@dataclass
class InstanceRecord:
    id: str
    service: str
    version: int
    revision: int
    cpu: float
    memory_mb: int
    gpu: int
    env: dict[str, str]
    port: int = 0
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    next_start_at: float = 0.0
    # Set when stop() was asked: SIGTERM at term_at, SIGKILL at kill_at.
    term_at: float | None = None
    kill_at: float | None = None
    term_sent: bool = False
    reason: str = ""
    placed: bool = False  # False while Pending (no room on the node)
    ready_seen: bool = False  # ready at least once since it was last started
    gpus: list[int] = field(default_factory=list)
    # True from just before the process is started until its pid is recorded: the process
    # may exist though no pid says so (a new controller finds it by its environment).
    launching: bool = False
    kill_reason: str = ""  # why the backend killed it, reported once it is seen dead
    # The resource group it must run in; "" in a record written before records named it
    # (the node's own group, as nothing else could have placed it there).
    group: str = ""


RECORD_FIELDS = {f.name for f in fields(InstanceRecord)}


class InstanceFiles:
    """The instance directories and logs under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "instances"
        self.log_dir = data_dir / "logs"
        for directory in (self.root, self.log_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)  # also when an older version made it readable to all
        # What the processes of these instances carry in EAS_INSTANCE_DIR (processes.py).
        self.resolved_root = self.root.resolve()

    def directory(self, instance_id: str) -> Path:
        return self.root / instance_id

    def boot_path(self, instance_id: str) -> Path:
        return self.directory(instance_id) / "boot.json"

    def create(self, instance_id: str, boot: dict[str, Any]) -> None:
        directory = self.directory(instance_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        write_private(self.boot_path(instance_id), json.dumps(boot))

    def save(self, record: InstanceRecord) -> None:
        directory = self.directory(record.id)
        if not directory.exists():
            return  # forgotten meanwhile: nothing to bring back
        write_private(directory / "record.json", json.dumps(asdict(record)))

    def load(self) -> list[InstanceRecord]:
        """Every readable record, its directory made private again (an older version may
        have left it readable); directories with no record (placed, never started) go."""
        records = []
        for path in sorted(self.root.glob("*/record.json")):
            try:
                data = json.loads(path.read_text())
                # Fields this version does not know (a newer controller wrote it) are dropped.
                record = InstanceRecord(**{k: v for k, v in data.items() if k in RECORD_FIELDS})
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring unreadable instance record %s: %s", path, exc)
                continue
            path.parent.chmod(0o700)
            with contextlib.suppress(FileNotFoundError):
                (path.parent / "boot.json").chmod(0o600)
            records.append(record)
        return records

    def remove_unrecorded(self) -> None:
        for directory in self.root.iterdir():
            if directory.is_dir() and not (directory / "record.json").exists():
                shutil.rmtree(directory, ignore_errors=True)

    def remove(self, instance_id: str) -> None:
        shutil.rmtree(self.directory(instance_id), ignore_errors=True)

    def read_reason(self, instance_id: str) -> str:
        """Why the runtime says the instance failed, if it wrote it."""
        try:
            return (self.directory(instance_id) / "reason").read_text().strip()
        except FileNotFoundError:
            return ""

    def clear_reason(self, instance_id: str) -> None:
        (self.directory(instance_id) / "reason").unlink(missing_ok=True)

    def open_log(self, instance_id: str) -> BinaryIO:
        path = self.log_dir / f"{instance_id}.log"
        logfile = open(path, "ab", opener=_private_opener)  # noqa: SIM115 (the caller closes)
        os.fchmod(logfile.fileno(), 0o600)  # also a log an older version made readable
        return logfile

    def tail_log(self, instance_id: str, count: int) -> list[str]:
        """The last ``count`` lines, read line by line: a log may be larger than memory. An
        id that is no single file name names no log."""
        name = f"{instance_id}.log"
        if count <= 0 or "\x00" in name or Path(name).name != name or instance_id == "..":
            return []
        path = self.log_dir / name
        if not path.is_file():
            return []
        with path.open(errors="replace") as f:
            return [line.rstrip("\n") for line in collections.deque(f, maxlen=count)]


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically, readable by this user only."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", opener=_private_opener) as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    os.replace(tmp, path)
