"""The control-API client: every call signed with an access key, every error one EASError.

client = ControlClient.from_config()            # ~/.eas/config, written by `eascmd config`
client.create_service(json.load(open("service.json")))
client.wait_until_running("demo")
"""

from __future__ import annotations

import configparser
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from eas_core.artefacts import file_digest
from eas_core.auth.keys import AccessKey, sign_request
from eas_core.config import client_config_path
from eas_core.errors import EASError, NotFound, from_response
from eas_core.spec.alerts import AlertDetails, AlertRule
from eas_core.spec.monitoring import AutoscaleRule, AutoscaleStatus, Event, ServiceMetrics

SECTION = "eas"


@dataclass(frozen=True)
class ClientConfig:
    access_key_id: str
    access_key_secret: str
    endpoint: str

    @classmethod
    def load(cls, path: Path | None = None) -> ClientConfig:
        path = path or client_config_path()
        parser = configparser.ConfigParser()
        if not parser.read(path):
            raise EASError(
                f"no configuration at {path}: run `eascmd config -i ID -k SECRET -e ENDPOINT`"
            )
        try:
            section = parser[SECTION]
            return cls(section["access_id"], section["access_key"], section["endpoint"])
        except KeyError as exc:
            raise EASError(f"{path}: missing {exc.args[0]}; run `eascmd config` again") from None

    def save(self, path: Path | None = None) -> Path:
        path = path or client_config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        parser = configparser.ConfigParser()
        parser[SECTION] = {
            "access_id": self.access_key_id,
            "access_key": self.access_key_secret,
            "endpoint": self.endpoint,
        }
        # Created 0600, not chmod-ed after writing: the secret is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            parser.write(f)
        return path


def normalize_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    return endpoint


class ControlClient:
    def __init__(
        self, endpoint: str, access_key_id: str, access_key_secret: str, *, timeout: float = 120.0
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.key = AccessKey(access_key_id, access_key_secret)
        self.http = httpx.Client(base_url=self.endpoint, timeout=timeout)

    @classmethod
    def from_config(cls, config: ClientConfig | None = None) -> ControlClient:
        config = config or ClientConfig.load()
        return cls(config.endpoint, config.access_key_id, config.access_key_secret)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        upload: Path | None = None,
    ) -> Any:
        """One signed call. ``upload`` streams a file as the body: it is hashed first (the
        signature covers the body's sha256), then sent chunk by chunk, never held whole."""
        if body is not None:
            content = json.dumps(body, allow_nan=False).encode()
        content = content or b""
        query = str(httpx.QueryParams(params or {}))
        if upload is not None:
            digest = file_digest(upload)
            headers = sign_request(self.key, method, path, query, content_sha256=digest)
            headers["content-length"] = str(upload.stat().st_size)
        else:
            headers = sign_request(self.key, method, path, query, content)
        if body is not None:
            headers["content-type"] = "application/json"
        url = path + (f"?{query}" if query else "")
        try:
            if upload is not None:
                with upload.open("rb") as f:
                    answer = self.http.request(method, url, content=_chunks(f), headers=headers)
            else:
                answer = self.http.request(method, url, content=content, headers=headers)
        except httpx.ConnectError:
            raise EASError(
                f"cannot reach the control API at {self.endpoint} (is `eascmd server` running?)"
            ) from None
        except httpx.HTTPError as exc:
            raise EASError(f"control API request failed: {exc}") from None
        try:
            data = answer.json() if answer.content else None
        except ValueError:
            data = {"message": answer.text}
        if answer.status_code >= 400:
            raise from_response(answer.status_code, data if isinstance(data, dict) else None)
        return data

    # -- services -------------------------------------------------------------------------
    def create_service(self, document: dict[str, Any], *, related: bool = False) -> dict[str, Any]:
        params = {"related": "true"} if related else None
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/services", body=document, params=params
        )
        return result

    def list_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/services")
        return result

    def describe_service(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/services/{name}")
        return result

    def modify_service(self, name: str, change: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", f"/api/v1/services/{name}", body=change)
        return result

    def stop_service(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/services/{name}/stop")
        return result

    def start_service(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/services/{name}/start")
        return result

    def delete_service(self, name: str) -> None:
        self.request("DELETE", f"/api/v1/services/{name}")

    def list_instances(self, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", f"/api/v1/services/{name}/instances")
        return result

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", f"/api/v1/services/{name}/versions")
        return result

    def get_version(self, name: str, version: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/services/{name}/versions/{version}")
        return result

    def switch_version(
        self, name: str, version: int, *, with_resources: bool = False
    ) -> dict[str, Any]:
        """``with_resources``: also bring back the version's cpu, memory, gpu, resource group
        and capacity settings (by default those stay as they are now)."""
        body: dict[str, Any] = {"version": version}
        if with_resources:
            body["with_resources"] = True
        result: dict[str, Any] = self.request("POST", f"/api/v1/services/{name}/version", body=body)
        return result

    def release(self, name: str, weight: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/services/{name}/release", body={"weight": weight}
        )
        return result

    def logs(self, name: str, *, instance: str | None = None, tail: int = 200) -> dict[str, Any]:
        params: dict[str, Any] = {"tail": tail}
        if instance:
            params["instance"] = instance
        result: dict[str, Any] = self.request("GET", f"/api/v1/services/{name}/logs", params=params)
        return result

    def metrics(
        self,
        name: str,
        *,
        metrics: Sequence[str] | None = None,
        since: str = "15m",
        instance: str | None = None,
    ) -> ServiceMetrics:
        """The service's monitoring series over the last ``since`` (``30s``, ``15m``, ``7d``):
        the whole service's and each instance's, or only ``instance``'s; ``metrics`` narrows
        them (names in :data:`eas_core.spec.monitoring.METRICS`)."""
        params: dict[str, Any] = {"since": since}
        if metrics:
            params["metric"] = list(metrics)
        if instance:
            params["instance"] = instance
        answer = self.request("GET", f"/api/v1/services/{name}/metrics", params=params)
        return ServiceMetrics.model_validate(answer)

    def autoscale(self, name: str) -> AutoscaleStatus:
        """The service's autoscaling rule (``rule`` None when it is off)."""
        answer = self.request("GET", f"/api/v1/services/{name}/autoscale")
        return AutoscaleStatus.model_validate(answer)

    def set_autoscale(self, name: str, rule: AutoscaleRule) -> AutoscaleStatus:
        answer = self.request(
            "PUT", f"/api/v1/services/{name}/autoscale", body=rule.model_dump(by_alias=True)
        )
        return AutoscaleStatus.model_validate(answer)

    def autoscale_off(self, name: str) -> AutoscaleStatus:
        answer = self.request("DELETE", f"/api/v1/services/{name}/autoscale")
        return AutoscaleStatus.model_validate(answer)

    def events(self, name: str, *, limit: int = 100) -> list[Event]:
        """What the controller did to the service on its own (autoscaling, alerts), oldest
        first."""
        answer = self.request("GET", f"/api/v1/services/{name}/events", params={"limit": limit})
        return [Event.model_validate(e) for e in answer]

    # -- alerts -----------------------------------------------------------------------------
    def create_alert(self, rule: AlertRule) -> AlertRule:
        answer = self.request(
            "POST", "/api/v1/alerts", body=rule.model_dump(by_alias=True, mode="json")
        )
        return AlertRule.model_validate(answer)

    def list_alerts(self) -> list[AlertRule]:
        return [AlertRule.model_validate(a) for a in self.request("GET", "/api/v1/alerts")]

    def describe_alert(self, name: str) -> AlertDetails:
        """The rule, its state per service, and its latest deliveries."""
        return AlertDetails.model_validate(self.request("GET", f"/api/v1/alerts/{name}"))

    def delete_alert(self, name: str) -> None:
        self.request("DELETE", f"/api/v1/alerts/{name}")

    def upload(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise EASError(f"{path}: no such file")
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/artefacts", upload=path, params={"filename": path.name}
        )
        return result

    def resources(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/resources")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/api/v1/health").json()
        return result

    # -- waiting --------------------------------------------------------------------------
    def wait_until_running(
        self,
        name: str,
        *,
        timeout: float = 600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.5,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Return the description once every instance of the current version is ready and
        no roll is left (with ``version``: once that version serves).

        Raises EASError when the service fails, a roll to ``version`` is undone (the message
        says why), or time runs out.
        """
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        while True:
            info = self.describe_service(name)
            state = (
                info["Status"],
                info["TotalInstance"],
                info["PendingInstance"],
                info["RunningInstance"],
            )
            if state != last and on_progress is not None:
                on_progress(info)
            last = state
            if version is not None and info["CurrentVersion"] != version:
                raise EASError(f"service {name!r}: {info['Message']}")
            if info["Status"] == "Running":
                return info
            if info["Status"] == "Failed":
                raise EASError(f"service {name!r} failed: {info['Message']}")
            if info["Status"] == "Stopped":
                raise EASError(f"service {name!r} is stopped")
            if time.monotonic() > deadline:
                raise EASError(
                    f"service {name!r} not running after {timeout:g} s: {info['Message']}"
                )
            time.sleep(poll)

    def wait_until_deleted(
        self,
        name: str,
        *,
        timeout: float = 120.0,
        poll: float = 0.5,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any] | None:
        """Wait until the delete is done: None once the service is gone (its instances
        stopped), or its description once it is retired — deleted while a released related
        service serves its endpoint, whose name and token stay until that one goes too.
        EASError on timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                info = self.describe_service(name)
            except NotFound:
                return None
            if info.get("Retired") and not self.list_instances(name):
                return info
            if on_progress is not None and info["Message"] != last:
                on_progress(info)
            last = info["Message"]
            time.sleep(poll)
        raise EASError(f"service {name!r} still present after {timeout:g} s")


def _chunks(f: Any, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
