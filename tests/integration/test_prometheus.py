"""A real Prometheus, configured from deploy/monitoring/prometheus.yml, discovers the
installation through /api/v1/prometheus/targets, scrapes it, and answers PromQL about a
service's request rate."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.installation import REPO, Installation, free_port, python_service, wait_for

PROMETHEUS = shutil.which("prometheus")
CONFIG = REPO / "deploy" / "monitoring" / "prometheus.yml"


def test_discovery_needs_the_prometheus_token(installation: Installation) -> None:
    url = f"{installation.controller_url}/api/v1/prometheus/targets"
    refused = httpx.get(url, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert "Prometheus token" in refused.json()["message"]
    assert httpx.get(url).status_code == 401
    token = (installation.data_dir / "prometheus.token").read_text().strip()
    found = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert found.status_code == 200
    gateway = [t for t in found.json() if t["labels"]["eas_role"] == "gateway"]
    assert gateway[0]["targets"] == [f"127.0.0.1:{installation.gateway_port}"]


def test_dashboard_charts_the_same_metrics() -> None:
    dashboard = json.loads((REPO / "deploy" / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for name in (
        "eas_requests_total",
        "eas_request_duration_seconds_bucket",
        "eas_queue_length",
        "eas_request_bytes_total",
        "eas_response_bytes_total",
    ):
        assert name in exprs, name


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": promql})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus binary is not installed (make install-test installs it: "
    "apt-get install -y prometheus)",
)
def test_prometheus_scrapes_the_installation_through_discovery(
    installation: Installation,
    unique_name: str,
    tmp_path: Path,
    cleanup: Callable[..., str],
) -> None:
    client = installation.client
    client.create_service(python_service(unique_name))
    client.wait_until_running(unique_name, timeout=60)
    token = client.describe_service(unique_name)["AccessToken"]

    config = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    job = config["scrape_configs"][0]
    sd = job["http_sd_configs"][0]
    sd["url"] = f"{installation.controller_url}/api/v1/prometheus/targets"
    sd["refresh_interval"] = "1s"
    sd["authorization"]["credentials_file"] = str(installation.data_dir / "prometheus.token")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert PROMETHEUS is not None
    with open(tmp_path / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200,
            timeout=60,
            what="prometheus to start",
        )
        instance = client.list_instances(unique_name)[0]["InstanceName"]

        def target_up() -> bool:
            up = _query(port, f'up{{service="{unique_name}"}}')
            return bool(up) and up[0]["value"][1] == "1"

        wait_for(target_up, timeout=60, what="the instance to be discovered and scraped")
        url = f"{installation.gateway_url}/api/predict/{unique_name}"
        rate = f'sum(rate(eas_requests_total{{service="{unique_name}",code="200"}}[5s]))'

        def rate_seen() -> float:
            for _ in range(20):
                httpx.post(url, content=b"echo:x", headers={"Authorization": token})
            result = _query(port, rate)
            return float(result[0]["value"][1]) if result else 0.0

        assert wait_for(rate_seen, timeout=60, interval=0.5, what="a request rate") > 0
        labelled = _query(port, f'eas_requests_total{{service="{unique_name}"}}')
        assert labelled[0]["metric"]["instance"] == instance
        assert labelled[0]["metric"]["version"] == "1"
        gateway = _query(port, f'eas_gateway_requests_total{{service="{unique_name}"}}')
        assert gateway and gateway[0]["metric"]["instance"] == "gateway"
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
