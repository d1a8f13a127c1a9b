"""The control-API client: every call signed with an access key, every error one EASError,
every answer a typed shape of eas_core.spec.control (re-exported by eas_core.sdk).

client = ControlClient.from_config()            # ~/.eas/config, written by `eascmd config`
client.create_service(json.load(open("service.json")))
service = client.wait_until_running("demo")     # a Service: .status, .access_token, ...
"""

from __future__ import annotations

import configparser
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from eas_core.artefacts import file_digest
from eas_core.auth.keys import AccessKey, sign_request
from eas_core.config import client_config_path
from eas_core.errors import BadRequest, EASError, NotFound, Unavailable, from_response
from eas_core.spec.alerts import AlertDetails, AlertRule
from eas_core.spec.control import (
    Health,
    Instance,
    ResourceGroup,
    ResourceGroupDetail,
    ResourceGroupRequest,
    Service,
    ServiceLogs,
    ServiceSummary,
    Upload,
    Version,
)
from eas_core.spec.monitoring import AutoscaleRule, AutoscaleStatus, Event, ServiceMetrics
from eas_core.spec.shadow import ShadowReport, ShadowSetting
from eas_core.spec.status import ServiceStatus
from eas_core.spec.validation import field_errors

SECTION = "eas"
# Of an answer that does not fit, the first problems: enough to see which release sent it.
SHOWN_PROBLEMS = 5
T = TypeVar("T")


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
        body: object = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        upload: Path | None = None,
    ) -> object:
        """One signed call; the answer's JSON as it came. ``upload`` streams a file as the
        body: it is hashed first (the signature covers the body's sha256), then sent chunk by
        chunk, never held whole."""
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

    def _call(
        self,
        shape: TypeAdapter[T],
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str | int] | None = None,
        upload: Path | None = None,
    ) -> T:
        """One signed call, its answer parsed into ``shape``."""
        data = self.request(method, path, body=body, params=params, upload=upload)
        return _parse(shape, data, f"{method} {path}")

    # -- services -------------------------------------------------------------------------
    def create_service(self, document: dict[str, Any], *, related: bool = False) -> Service:
        """Create a service from its description (what `eascmd create` sends); with
        ``related``, a related service ``<name>_<8 hex digits>`` for blue-green release."""
        params = {"related": "true"} if related else None
        return self._call(_SERVICE, "POST", "/api/v1/services", body=document, params=params)

    def list_services(self) -> list[ServiceSummary]:
        return self._call(_SUMMARIES, "GET", "/api/v1/services")

    def describe_service(self, name: str) -> Service:
        return self._call(_SERVICE, "GET", f"/api/v1/services/{name}")

    def modify_service(self, name: str, change: dict[str, Any]) -> Service:
        """Change the fields ``change`` names (a description's shape, every key optional)."""
        return self._call(_SERVICE, "PUT", f"/api/v1/services/{name}", body=change)

    def stop_service(self, name: str) -> ServiceSummary:
        return self._call(_SUMMARY, "POST", f"/api/v1/services/{name}/stop")

    def start_service(self, name: str) -> ServiceSummary:
        return self._call(_SUMMARY, "POST", f"/api/v1/services/{name}/start")

    def delete_service(self, name: str) -> ServiceSummary:
        return self._call(_SUMMARY, "DELETE", f"/api/v1/services/{name}")

    def list_instances(self, name: str) -> list[Instance]:
        return self._call(_INSTANCES, "GET", f"/api/v1/services/{name}/instances")

    def list_versions(self, name: str) -> list[Version]:
        return self._call(_VERSIONS, "GET", f"/api/v1/services/{name}/versions")

    def get_version(self, name: str, version: int) -> Version:
        return self._call(_VERSION, "GET", f"/api/v1/services/{name}/versions/{version}")

    def switch_version(self, name: str, version: int, *, with_resources: bool = False) -> Service:
        """``with_resources``: also bring back the version's cpu, memory, gpu, resource group
        and capacity settings (by default those stay as they are now)."""
        body: dict[str, object] = {"version": version}
        if with_resources:
            body["with_resources"] = True
        return self._call(_SERVICE, "POST", f"/api/v1/services/{name}/version", body=body)

    def release(self, name: str, weight: int) -> Service:
        return self._call(
            _SERVICE, "POST", f"/api/v1/services/{name}/release", body={"weight": weight}
        )

    def logs(self, name: str, *, instance: str | None = None, tail: int = 200) -> ServiceLogs:
        params: dict[str, str | int] = {"tail": tail}
        if instance:
            params["instance"] = instance
        return self._call(_LOGS, "GET", f"/api/v1/services/{name}/logs", params=params)

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
        return self._call(
            _EVENTS, "GET", f"/api/v1/services/{name}/events", params={"limit": limit}
        )

    # -- shadow traffic ---------------------------------------------------------------------
    def shadow(self, name: str, *, limit: int = 100) -> ShadowReport:
        """NAME's mirror setting, its counters over every gateway, the latest ``limit``
        pairs of answers (live, candidate)."""
        answer = self.request("GET", f"/api/v1/services/{name}/shadow", params={"limit": limit})
        return ShadowReport.model_validate(answer)

    def set_shadow(self, name: str, target: str, percent: float) -> ShadowReport:
        """Mirror ``percent`` % of NAME's calls to ``target`` (callers get NAME's answers)."""
        try:
            setting = ShadowSetting.model_validate({"Target": target, "Percent": percent})
        except ValidationError as exc:
            raise BadRequest("; ".join(field_errors(exc))) from None
        answer = self.request(
            "PUT", f"/api/v1/services/{name}/shadow", body=setting.model_dump(by_alias=True)
        )
        return ShadowReport.model_validate(answer)

    def shadow_off(self, name: str) -> ShadowReport:
        answer = self.request("DELETE", f"/api/v1/services/{name}/shadow")
        return ShadowReport.model_validate(answer)

    def wait_shadow_applied(
        self, name: str, *, timeout: float = 60.0, poll: float = 0.2
    ) -> ShadowReport:
        """Return once every gateway mirrors NAME's calls as set (or, with mirroring off, no
        longer mirrors them): the calls sent from then on are mirrored as asked."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.shadow(name, limit=0)
            if report.applied:
                return report
            if time.monotonic() > deadline:
                waiting = ", ".join(report.unreachable) or "the route table's push"
                raise Unavailable(
                    f"shadow: the gateways did not take {name}'s setting within {timeout:g} s "
                    f"(waiting for {waiting})"
                )
            time.sleep(poll)

    # -- alerts -----------------------------------------------------------------------------
    def create_alert(self, rule: AlertRule) -> AlertRule:
        answer = self.request(
            "POST", "/api/v1/alerts", body=rule.model_dump(by_alias=True, mode="json")
        )
        return AlertRule.model_validate(answer)

    def list_alerts(self) -> list[AlertRule]:
        return self._call(_ALERT_RULES, "GET", "/api/v1/alerts")

    def describe_alert(self, name: str) -> AlertDetails:
        """The rule, its state per service, and its latest deliveries."""
        return AlertDetails.model_validate(self.request("GET", f"/api/v1/alerts/{name}"))

    def delete_alert(self, name: str) -> None:
        self.request("DELETE", f"/api/v1/alerts/{name}")

    def upload(self, path: Path) -> Upload:
        if not path.is_file():
            raise EASError(f"{path}: no such file")
        return self._call(
            _UPLOAD, "POST", "/api/v1/artefacts", upload=path, params={"filename": path.name}
        )

    def resources(self) -> list[ResourceGroup]:
        return self._call(_RESOURCE_GROUPS, "GET", "/api/v1/resources")

    def create_resource(
        self, name: str, *, description: str = "", labels: dict[str, str] | None = None
    ) -> ResourceGroup:
        """A resource group nodes join by its name (`eascmd resource create`)."""
        body = ResourceGroupRequest(name=name, description=description, labels=labels or {})
        return self._call(
            _RESOURCE_GROUP, "POST", "/api/v1/resources", body=body.model_dump(by_alias=True)
        )

    def describe_resource(self, name: str) -> ResourceGroupDetail:
        return self._call(_RESOURCE_GROUP_DETAIL, "GET", f"/api/v1/resources/{name}")

    def delete_resource(self, name: str) -> ResourceGroup:
        """Refused for `public` and while a service names the group; answers it as it was."""
        return self._call(_RESOURCE_GROUP, "DELETE", f"/api/v1/resources/{name}")

    def health(self) -> Health:
        try:
            answer = self.http.get("/api/v1/health")
        except httpx.HTTPError as exc:
            raise EASError(f"control API health check failed: {exc}") from None
        try:
            data = answer.json()
        except ValueError:
            raise EASError(
                f"GET /api/v1/health answered {answer.status_code} with no JSON"
            ) from None
        return _parse(_HEALTH, data, "GET /api/v1/health")

    # -- waiting --------------------------------------------------------------------------
    def wait_until_running(
        self,
        name: str,
        *,
        timeout: float = 600.0,
        on_progress: Callable[[Service], None] | None = None,
        poll: float = 0.5,
        version: int | None = None,
    ) -> Service:
        """Return the description once every instance of the current version is ready and
        no roll is left (with ``version``: once that version serves). ``on_progress`` is
        given the description each time its status, counts or message change.

        Raises EASError when the service fails, a roll to ``version`` is undone (the message
        says why), or time runs out.
        """
        deadline = time.monotonic() + timeout
        last: tuple[ServiceStatus, int, int, int, str] | None = None
        while True:
            info = self.describe_service(name)
            # The message is part of what changed: a new reason to wait is news too.
            state = (
                info.status,
                info.total_instance,
                info.pending_instance,
                info.running_instance,
                info.message,
            )
            if state != last and on_progress is not None:
                on_progress(info)
            last = state
            if version is not None and info.current_version != version:
                raise EASError(f"service {name!r}: {info.message}")
            if info.status == ServiceStatus.RUNNING:
                return info
            if info.status == ServiceStatus.FAILED:
                raise EASError(f"service {name!r} failed: {info.message}")
            if info.status == ServiceStatus.STOPPED:
                raise EASError(f"service {name!r} is stopped")
            if time.monotonic() > deadline:
                raise EASError(f"service {name!r} not running after {timeout:g} s: {info.message}")
            time.sleep(poll)

    def wait_until_deleted(
        self,
        name: str,
        *,
        timeout: float = 120.0,
        poll: float = 0.5,
        on_progress: Callable[[Service], None] | None = None,
    ) -> Service | None:
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
            if info.retired and not self.list_instances(name):
                return info
            if on_progress is not None and info.message != last:
                on_progress(info)
            last = info.message
            time.sleep(poll)
        raise EASError(f"service {name!r} still present after {timeout:g} s")


def _parse(shape: TypeAdapter[T], data: object, call: str) -> T:
    try:
        return shape.validate_python(data)
    except ValidationError as exc:
        problems = field_errors(exc)
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        if more > 0:
            shown += f"; and {more} more"
        raise EASError(
            f"{call}: the control API's answer is not what this client understands "
            f"({shown}); is the controller of another release?"
        ) from None


_SERVICE = TypeAdapter(Service)
_SUMMARY = TypeAdapter(ServiceSummary)
_SUMMARIES = TypeAdapter(list[ServiceSummary])
_EVENTS = TypeAdapter(list[Event])
_ALERT_RULES = TypeAdapter(list[AlertRule])
_INSTANCES = TypeAdapter(list[Instance])
_VERSION = TypeAdapter(Version)
_VERSIONS = TypeAdapter(list[Version])
_LOGS = TypeAdapter(ServiceLogs)
_UPLOAD = TypeAdapter(Upload)
_RESOURCE_GROUPS = TypeAdapter(list[ResourceGroup])
_RESOURCE_GROUP = TypeAdapter(ResourceGroup)
_RESOURCE_GROUP_DETAIL = TypeAdapter(ResourceGroupDetail)
_HEALTH = TypeAdapter(Health)


def _chunks(f: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
