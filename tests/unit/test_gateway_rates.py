"""The collector's gateway series with several gateways: each gateway counts the calls it
passed on, and a service's gateway rates are the sum over every gateway (real loopback
metrics endpoints; the controller's collection round as it runs)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from eas_core.config import ControllerSettings
from eas_core.controller.backends.base import ObservedInstance
from eas_core.controller.metrics.collector import Collector
from eas_core.controller.reconciler import Snapshot
from eas_core.controller.store import Repository, SeriesStore
from eas_core.spec.status import InstanceStatus


def serving(text: Callable[[], str]) -> ThreadingHTTPServer:
    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def scraped(counts: dict[str, tuple[int, int]], name: str) -> str:
    return gateway_text(*counts[name])


def gateway_text(ok: int, failed: int) -> str:
    return (
        "# TYPE eas_gateway_requests counter\n"
        f'eas_gateway_requests_total{{service="svc",code="200"}} {ok}\n'
        f'eas_gateway_requests_total{{service="svc",code="503"}} {failed}\n'
    )


def test_the_gateway_rates_of_a_service_are_summed_over_every_gateway(tmp_path: Path) -> None:
    counts = {"a": (0, 0), "b": (0, 0)}
    gateways = {name: serving(functools.partial(scraped, counts, name)) for name in counts}
    instance = serving(lambda: "")
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    urls = [f"http://127.0.0.1:{g.server_address[1]}" for g in gateways.values()]
    collector = Collector(
        ControllerSettings(data_dir=tmp_path, gateways=urls), SeriesStore(repo.engine)
    )
    try:
        observed = ObservedInstance(
            id="svc-a",
            service="svc",
            version=1,
            revision=0,
            status=InstanceStatus.RUNNING,
            host="127.0.0.1",
            port=instance.server_address[1],
            node="local",
        )
        collector(Snapshot(instances=[replace(observed)]))
        since = time.time() - 1
        collector.collect()  # the first scrape of each gateway: its starting point
        counts["a"], counts["b"] = (30, 0), (50, 20)
        collector.collect()
        points = collector.series.read("svc", 0, since, metrics=["gateway_rps", "gateway_rps_5xx"])
        by_metric = {p.metric: p.value for p in points}
        # The same interval for both gateways: the sum's ratio is the calls' ratio.
        assert by_metric["gateway_rps"] > 0
        assert abs(by_metric["gateway_rps_5xx"] / by_metric["gateway_rps"] - 20 / 100) < 0.02
    finally:
        collector.stop()
        for server in [*gateways.values(), instance]:
            server.shutdown()
            server.server_close()
        repo.close()


def test_prometheus_discovers_every_gateway() -> None:
    from eas_core.controller.api.prometheus import targets

    found = targets(Snapshot(), ["http://127.0.0.1:8080", "http://10.0.0.2:8081"])
    assert [(t["targets"], t["labels"]["instance"]) for t in found] == [
        (["127.0.0.1:8080"], "gateway"),
        (["10.0.0.2:8081"], "gateway-2"),
    ]
