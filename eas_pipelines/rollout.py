"""Rollouts over the control API: deploy a model URI, test it, keep it or roll it back.

    all_at_once   modify → version N+1 rolls over the instances → wait ready → smoke (→ bake)
                  failure: `eascmd version` back to N (or the core already undid the roll)
    blue_green    create -r → related service `name_xxxxxxxx` → wait ready → smoke on its own
                  endpoint → release steps (10 → 50 → 100), each baked under probe traffic
                  through the original endpoint → promote: modify the original to the same
                  model (version N+1), release 0, delete the related side
                  with ``canary:``, each step below 100 is judged on both sides' real metrics
                  (eas_pipelines.canary) and the first failing step rolls back
                  failure: release 0 + delete the related side; the original never changed

Promotion keeps one service with one version history, so the next rollout, the rollback job
and `eascmd desc` all see the model that serves as a version of the original service.

Every step is safe to repeat: a model already current makes no new version, a service that
does not exist is created, and related services left by a run that died are retired before a
new blue-green rollout starts. The core keeps each version consistent on its own (a roll that
fails to start is undone by the controller), so a dead run leaves a serving service behind.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from eas_core.errors import Conflict, EASError, NotFound
from eas_core.sdk import VERSIONED_FIELDS, Service, ServiceStatus
from eas_core.sdk.control import ControlClient
from eas_pipelines.canary import CanaryReport, judge_step
from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.resources import EASResource
from eas_pipelines.shadow import ShadowVerdict, run_shadow
from eas_pipelines.smoke import Prober, Report, probe_for, run_smoke_tests
from eas_pipelines.stores import open_store, upload_local

_RELATED_SUFFIX = re.compile(r"_[0-9a-f]{8}")


class Log(Protocol):
    """What a rollout reports through: Dagster's ``context.log`` or any logger."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...

    def error(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class LiveState:
    """What serves after a rollout: the deployment asset's metadata."""

    service: str
    version: int
    previous_version: int | None
    latest_version: int
    endpoint: str
    model_path: str | None
    status: ServiceStatus

    def metadata(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "live_version": self.version,
            "previous_version": self.previous_version,
            "latest_version": self.latest_version,
            "endpoint": self.endpoint,
            "model_path": self.model_path,
            "status": str(self.status),
        }


@dataclass
class Outcome:
    """A rollout that kept its model: where it stands, and the evidence."""

    state: LiveState
    smoke: Report | None
    new_version: bool
    bakes: list[tuple[int, Report]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shadow: ShadowVerdict | None = None
    canary: CanaryReport | None = None


class RolloutFailed(Exception):
    """A rollout that did not keep its model: which check failed, what it saw, and where
    the service stands now (after the rollback)."""

    def __init__(
        self,
        check: str,
        reason: str,
        *,
        report: Report | None = None,
        state: LiveState | None = None,
        rolled_back: bool = True,
        model_uri: str | None = None,
        instances: dict[str, str] | None = None,
        shadow: ShadowVerdict | None = None,
        canary: CanaryReport | None = None,
    ) -> None:
        # The first instance's own reason, unless the service's message says it already.
        causes = [
            f"{instance} {why}"
            for instance, why in (instances or {}).items()
            if why.partition(": ")[2] not in reason
        ]
        if causes:
            reason = f"{reason} (instance {causes[0]})"
        super().__init__(f"{check} failed: {reason}")
        self.check = check
        self.reason = reason
        self.report = report
        self.state = state
        self.rolled_back = rolled_back
        self.model_uri = model_uri
        # Instance → its status and why it is not ready, as seen when the check failed.
        self.instances = instances or {}
        self.shadow = shadow  # the shadow comparison, when that is what refused the model
        self.canary = canary  # the canary analysis up to the step that refused the model


class Rollout:
    """One service's rollouts, driven only through the control API and the gateway."""

    def __init__(
        self,
        declaration: PipelineDeclaration,
        eas: EASResource,
        client: ControlClient,
        log: Log,
    ) -> None:
        self.declaration = declaration
        self.eas = eas
        self.client = client
        self.log = log
        self.name = declaration.name
        self._uploaded: dict[str, str] = {}

    # -- the service description ----------------------------------------------------------
    def document(self, model_uri: str) -> dict[str, Any]:
        """The declared description with this model; local processor packages uploaded so
        the installation needs nothing from this machine's disk."""
        document = dict(self.declaration.service)
        for key in ("processor_path",):
            value = document.get(key)
            if isinstance(value, str) and "://" not in value:
                path = self.declaration.resolve(value)
                if str(path) not in self._uploaded:
                    self._uploaded[str(path)] = upload_local(self.client, path)
                document[key] = self._uploaded[str(path)]
        store = open_store(self.declaration, self.client)
        for key, value in store.service_fields().items():
            document.setdefault(key, value)
        document["model_path"] = model_uri
        return document

    def change(self, current: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        """What `modify` must send to make ``document`` current: empty when the model and
        processor already are (then no version is made). Settings ride along with a new
        version; the instance count is left to whoever scaled the service."""
        if all(document.get(k) == current.get(k) for k in VERSIONED_FIELDS):
            return {}
        change = {
            k: v
            for k, v in document.items()
            if k not in ("name", "metadata") and current.get(k) != v
        }
        metadata = {
            k: v
            for k, v in (document.get("metadata") or {}).items()
            if k != "instance" and (current.get("metadata") or {}).get(k) != v
        }
        if metadata:
            change["metadata"] = metadata
        return change

    # -- views ----------------------------------------------------------------------------
    def describe(self, name: str | None = None) -> Service:
        return self.client.describe_service(name or self.name)

    def state(self, previous: int | None, info: Service | None = None) -> LiveState:
        info = info or self.describe()
        return LiveState(
            service=self.name,
            version=info.current_version,
            previous_version=previous,
            latest_version=info.latest_version,
            endpoint=info.intranet_endpoint,
            model_path=info.service_config.get("model_path"),
            status=info.status,
        )

    def related_services(self) -> list[str]:
        """Related (blue-green) services of this one still present, e.g. left by a dead run."""
        found = []
        for summary in self.client.list_services():
            name = summary.service_name
            if summary.status == ServiceStatus.DELETING:
                continue  # on its way out already
            suffix = name[len(self.name) :]
            if name.startswith(self.name) and _RELATED_SUFFIX.fullmatch(suffix):
                try:
                    if self.describe(name).related_to == self.name:
                        found.append(name)
                except NotFound:
                    continue
        return found

    def prober(self, info: Service, name: str | None = None) -> Prober:
        return Prober(
            self.eas.gateway_url(info.intranet_endpoint),
            name or self.name,
            info.access_token or None,
            self.declaration.smoke_tests.timeout_seconds,
        )

    def smoke(self, info: Service, name: str | None = None) -> Report:
        with self.prober(info, name) as prober:
            report = run_smoke_tests(prober, self.declaration.smoke_tests)
        verdict = "passed" if report.passed else "FAILED: " + "; ".join(report.failures)
        self.log.info(f"smoke tests on {name or self.name}: {verdict} ({report.summary()})")
        return report

    def bake(self, info: Service, what: str) -> Report:
        rollout = self.declaration.rollout
        self.log.info(f"baking {what} for {rollout.bake_seconds:g} s")
        with self.prober(info) as prober:
            report = probe_for(
                prober,
                self.declaration.smoke_tests,
                rollout.bake_seconds,
                rollout.probe_interval_seconds,
                self.declaration.rollback_on.bake,
            )
        verdict = "passed" if report.passed else "FAILED: " + "; ".join(report.failures)
        self.log.info(f"bake of {what}: {verdict} ({report.summary()})")
        return report

    def wait(self, name: str, version: int | None = None) -> Service:
        return self.client.wait_until_running(
            name, version=version, timeout=self.declaration.rollout.ready_timeout_seconds
        )

    def not_ready(self, name: str, version: int | None = None) -> dict[str, str]:
        """Why ``name``'s instances (of ``version``) are not ready, read before anything is
        rolled back: instance → "Status: reason"."""
        try:
            found = self.client.list_instances(name)
        except EASError as exc:
            return {"(instances)": f"cannot list them: {exc.message}"}
        return {
            i.instance_name: f"{i.status}: {i.reason or 'no reason given'}"
            for i in found
            if not i.ready and (version is None or i.version == version)
        }

    # -- deploy ---------------------------------------------------------------------------
    def deploy(self, model_uri: str, recorded: dict[str, Any] | None = None) -> Outcome:
        """Make ``model_uri`` serve, or roll back and raise RolloutFailed.

        ``recorded`` is the deployment asset's last metadata: it says which version served
        before the live one, for a repeat deploy whose checks fail."""
        document = self.document(model_uri)
        try:
            info = self.describe()
        except NotFound:
            return self._first(document)
        if info.related_to:
            raise EASError(
                f"service {self.name!r} is a related service of {info.related_to!r}; "
                "declare the original service"
            )
        if info.status == ServiceStatus.STOPPED:
            # A first deployment that failed its checks leaves the service stopped.
            self.log.info(f"starting stopped service {self.name}")
            self.client.start_service(self.name)
        if self.declaration.rollout.strategy == "blue_green":
            return self._blue_green(document, info, recorded)
        return self._all_at_once(document, info, recorded)

    def _first(self, document: dict[str, Any]) -> Outcome:
        """No service yet: create it. Nothing to roll back to, so a failure stops it."""
        self.log.info(f"service {self.name} does not exist: creating it")
        self.client.create_service(document)
        try:
            info = self.wait(self.name)
        except EASError as exc:
            instances = self.not_ready(self.name)
            self._stop_first(document)
            raise RolloutFailed(
                "ready",
                f"instances never ready: {exc.message}",
                rolled_back=False,
                state=self.state(None),
                model_uri=document["model_path"],
                instances=instances,
            ) from None
        report = self.smoke(info)
        if not report.passed and self.declaration.rollback_on.smoke_failure:
            self._stop_first(document)
            raise RolloutFailed(
                "smoke",
                "; ".join(report.failures),
                report=report,
                rolled_back=False,
                state=self.state(None),
                model_uri=document["model_path"],
            )
        return Outcome(self.state(None, self.describe()), report, new_version=True)

    def _stop_first(self, document: dict[str, Any]) -> None:
        self.log.error(
            f"first version of {self.name} failed its checks and there is no previous version: "
            "stopping the service (it is kept for `eascmd logs`)"
        )
        self.client.stop_service(self.name)

    def _all_at_once(
        self, document: dict[str, Any], info: Service, recorded: dict[str, Any] | None
    ) -> Outcome:
        change = self.change(info.service_config, document)
        current = info.current_version
        if change:
            previous: int | None = current
            self.log.info(f"modify {self.name}: {sorted(change)} → new version")
            version = self.client.modify_service(self.name, change).current_version
            self.log.info(f"{self.name}: rolling from version {current} to {version}")
        else:
            # The model already serves (a run that died after `modify`, or a repeat).
            version = current
            previous = default_previous(current, recorded)
            self.log.info(f"{self.name}: version {version} already serves this model")
        uri = document["model_path"]

        def fail_back(
            check: str,
            reason: str,
            report: Report | None = None,
            instances: dict[str, str] | None = None,
        ) -> RolloutFailed:
            """Go back to the previous version, then say which check failed and why."""
            return RolloutFailed(
                check,
                reason,
                report=report,
                state=self._back_to(previous),
                rolled_back=previous is not None,
                model_uri=uri,
                instances=instances,
            )

        try:
            info = self.wait(self.name, version)
        except EASError as exc:
            raise fail_back(
                "ready",
                f"version {version} never became ready: {exc.message}",
                instances=self.not_ready(self.name, version),
            ) from None
        report = self.smoke(info)
        if not report.passed and self.declaration.rollback_on.smoke_failure:
            raise fail_back("smoke", "; ".join(report.failures), report)
        outcome = Outcome(self.state(previous, info), report, new_version=bool(change))
        if self.declaration.rollout.bake_seconds > 0:
            bake = self.bake(info, f"version {version}")
            outcome.bakes.append((100, bake))
            if not bake.passed:
                raise fail_back("bake", "; ".join(bake.failures), bake)
        return outcome

    def _blue_green(
        self, document: dict[str, Any], info: Service, recorded: dict[str, Any] | None
    ) -> Outcome:
        for leftover in self.related_services():
            self.log.warning(f"retiring related service {leftover} left by an earlier run")
            self.retire(leftover)
        if not self.change(info.service_config, document):
            # Nothing to release: check what serves, as all_at_once would.
            return self._all_at_once(document, info, recorded)
        uri = document["model_path"]
        created = self.client.create_service(document, related=True)
        related = created.service_name
        self.log.info(f"created related service {related} for blue-green release")
        try:
            related_info = self.wait(related)
        except EASError as exc:
            instances = self.not_ready(related)
            self.retire(related)
            raise RolloutFailed(
                "ready",
                f"related service {related} never became ready: {exc.message}",
                state=self.state(None),
                model_uri=uri,
                instances=instances,
            ) from None
        report = self.smoke(related_info, related)
        if not report.passed and self.declaration.rollback_on.smoke_failure:
            self.retire(related)
            raise RolloutFailed(
                "smoke",
                "; ".join(report.failures),
                report=report,
                state=self.state(None),
                model_uri=uri,
            )
        verdict = self.shadow(related, uri)
        outcome = self.release(related, model_uri=uri)
        outcome.smoke = report
        outcome.shadow = verdict
        return outcome

    def shadow(self, related: str, uri: str) -> ShadowVerdict | None:
        """With ``shadow:`` declared: ``related`` answers mirrored copies of the original's
        calls for the window before it gets any traffic; refused, it is retired."""
        declared = self.declaration.shadow
        if declared is None:
            return None
        try:
            verdict = run_shadow(self.client, self.name, related, declared, self.log)
        except EASError:
            self.retire(related)
            raise
        if not verdict.passed:
            self.retire(related)
            raise RolloutFailed(
                "shadow",
                verdict.reason,
                state=self.state(None),
                model_uri=uri,
                shadow=verdict,
            )
        return verdict

    # -- release (blue-green steps) -------------------------------------------------------
    def release(
        self,
        related: str,
        *,
        model_uri: str | None = None,
        steps: list[int] | None = None,
    ) -> Outcome:
        """Step ``related`` up to 100 % with a bake at each step, then promote it."""
        original = self.describe()
        previous = original.current_version
        related_info = self.describe(related)
        uri = model_uri or related_info.service_config.get("model_path")
        bakes: list[tuple[int, Report]] = []
        canary = CanaryReport() if self.declaration.canary is not None else None
        for weight in steps or self.declaration.rollout.steps:
            self.client.release(related, weight)
            self.log.info(f"released {related}: {weight}% of {self.name}'s traffic")
            if canary is not None and weight < 100:
                self.judge_canary(canary, related, weight, uri)
            if self.declaration.rollout.bake_seconds > 0:
                bake = self.bake(original, f"{related} at {weight}%")
                bakes.append((weight, bake))
                if not bake.passed:
                    self.retire(related)
                    raise RolloutFailed(
                        "bake",
                        f"at {weight}%: " + "; ".join(bake.failures),
                        report=bake,
                        state=self.state(None),
                        model_uri=uri,
                    )
        state = self._promote(related, related_info, previous)
        return Outcome(state, None, new_version=True, bakes=bakes, canary=canary)

    def judge_canary(
        self, canary: CanaryReport, related: str, weight: int, uri: str | None
    ) -> None:
        """Judge the step at ``weight``; a failing one (or one without enough data, unless
        ``on_no_data: continue``) retires ``related`` and raises RolloutFailed."""
        declared = self.declaration.canary
        assert declared is not None
        self.log.info(
            f"canary analysis at {weight}%: {related} against {self.name} for up to "
            f"{declared.window_seconds:g} s"
        )
        step = judge_step(self.client, self.name, related, weight, declared, self.log)
        canary.steps.append(step)
        if step.verdict == "pass" or (
            step.verdict == "nodata" and declared.on_no_data == "continue"
        ):
            return
        # Traffic goes back first: every second here is the canary answering callers. The
        # verdict is reported once that has taken effect — the release at 0 and the canary's
        # instances stopped — so nothing the refused version answers comes after it.
        self.retire(related)
        step.decided = time.time()
        self.log.info(
            f"canary {step.verdict} reported {step.decided - step.judged:.1f} s after the "
            f"analysis: {related} retired, all traffic on {self.name}"
        )
        raise RolloutFailed(
            "canary",
            step.reason
            if step.verdict == "fail"
            else f"not enough data ({step.reason}); on_no_data is rollback",
            state=self.state(None),
            model_uri=uri,
            canary=canary,
        )

    def _promote(self, related: str, related_info: Service, previous: int) -> LiveState:
        """All traffic is on the related side: move the original to the same model, hand the
        traffic back, delete the related side."""
        original = self.describe()
        change = self.change(original.service_config, related_info.service_config)
        if change:
            version = self.client.modify_service(self.name, change).current_version
            self.log.info(f"promoting: {self.name} rolls to version {version} (same model)")
            try:
                self.wait(self.name, version)
            except EASError as exc:
                instances = self.not_ready(self.name, version)
                self.retire(related)
                raise RolloutFailed(
                    "promote",
                    f"version {version} of {self.name} never became ready: {exc.message}",
                    state=self.state(None),
                    instances=instances,
                ) from None
        self.retire(related)
        return self.state(previous)

    def retire(self, related: str) -> None:
        """Release weight 0 and delete a related service: all traffic back to the original.
        Safe to repeat: a side already being deleted (Conflict) or gone (NotFound) is fine."""
        for step in (
            lambda: self.client.release(related, 0),
            lambda: self.client.delete_service(related),
        ):
            try:
                step()
            except NotFound:
                return
            except Conflict:
                continue
        self.client.wait_until_deleted(related, timeout=120)
        self.log.info(f"retired related service {related}: all traffic on {self.name}")

    # -- rollback -------------------------------------------------------------------------
    def _back_to(self, previous: int | None) -> LiveState:
        """Roll back after a failed check. With no previous version the service is left as it
        is: it served this model before this run, so stopping it would only add an outage."""
        if previous is None:
            self.log.error(f"{self.name}: no previous version to roll back to")
            return self.state(None)
        return self.rollback(previous)

    def rollback(self, version: int) -> LiveState:
        """`eascmd version NAME V`, then wait until V serves (a no-op when it already does,
        e.g. because the core undid a roll that failed to start)."""
        for leftover in self.related_services():
            self.retire(leftover)
        info = self.describe()
        if info.current_version != version:
            self.log.warning(f"{self.name}: rolling back to version {version}")
            self.client.switch_version(self.name, version)
        else:
            self.log.info(f"{self.name}: version {version} is current ({info.message})")
        info = self.wait(self.name, version)
        return self.state(None, info)


def default_previous(current: int, recorded: dict[str, Any] | None) -> int | None:
    """The version that served before ``current``: what the deployment asset recorded when
    it made ``current`` live, else ``current - 1``."""
    if recorded and recorded.get("live_version") == current:
        previous = recorded.get("previous_version")
        if isinstance(previous, int) and previous != current:
            return previous
    return current - 1 if current > 1 else None


__all__ = ["LiveState", "Outcome", "Rollout", "RolloutFailed", "default_previous"]
