"""The README's first command: `eascmd server --demo` deploys the demo, prints a curl that
answers, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

from tests.support.installation import start_installation, wait_for


def test_demo_installation_answers_its_curl_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    running = start_installation(data, demo=True)
    out = tmp_path / "data-server.out"
    try:
        line = wait_for(
            lambda: re.search(r"^curl .*$", out.read_text(), re.M),
            timeout=90,
            what="the demo's curl line",
        )
        answer = subprocess.run(
            ["bash", "-c", line.group(0) + " -s"], capture_output=True, text=True, timeout=30
        )
        assert answer.stdout == "hello eas"
        assert "eascmd config -i" in out.read_text()
        records = [json.loads(p.read_text()) for p in (data / "instances").glob("*/record.json")]
        pids = [r["pid"] for r in records] + [running.pid("controller"), running.pid("gateway")]
        assert len(pids) == 3
    finally:
        running.process.send_signal(signal.SIGINT)
        running.process.wait(timeout=60)
    assert running.process.returncode == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        )
    assert not list((data / "instances").glob("*/record.json"))
    running.client.close()
