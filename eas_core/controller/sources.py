"""Which ``model_path`` / ``processor_path`` sources a deployment may name (the operator's
allow-list, ``EAS_ARTEFACT_LOCAL_ROOTS`` and ``EAS_ARTEFACT_URL_HOSTS``).

The controller snapshots whatever a description names and hands it to a processor, so a
source is a read on the controller's behalf: without bounds a caller could deploy the
controller's own ``credentials.json`` or make it fetch from the control API on loopback.
Local files must lie under an allowed root once symlinks are resolved, and never inside the
installation's data directory; URLs must name a public host (or one the operator allowed),
and never the installation's own control API or gateway. Every file read while packing a
directory and every redirect followed is checked again, so a symlink or a redirect cannot
lead around the check. `eascmd test` (no controller) is not bound by it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psutil

from eas_core.artefacts.packages import PACKAGE_FIELDS
from eas_core.config import ControllerSettings
from eas_core.errors import ArtefactError, InvalidDescription
from eas_core.spec.service import ServiceDescription

ANY_PUBLIC_HOST = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class SourcePolicy:
    local_roots: tuple[str, ...]  # real paths
    url_hosts: tuple[str, ...]
    data_dir: str  # real path
    own_ports: frozenset[int]

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> SourcePolicy:
        roots = settings.artefact_local_roots
        if roots is None:
            roots = [Path.home(), Path.cwd()]
        return cls(
            local_roots=tuple(os.path.realpath(r.expanduser()) for r in roots),
            url_hosts=tuple(h.strip().lower() for h in settings.artefact_url_hosts if h.strip()),
            data_dir=os.path.realpath(settings.data_dir),
            own_ports=frozenset({settings.controller_port, settings.gateway_port}),
        )

    # -- the check at the API ----------------------------------------------------------------
    def check_description(self, description: ServiceDescription, *, fetching: bool = True) -> None:
        """Refuse, naming the field, a package source outside the allow-list. With
        ``fetching`` False (nothing will be read from it now) a URL whose host no longer
        resolves is let through: it can lead nowhere."""
        problems = []
        for field in PACKAGE_FIELDS.values():
            source = getattr(description, field)
            if not source:
                continue
            try:
                self.check_source(source, fetching=fetching)
            except ArtefactError as exc:
                problems.append(f"{field}: {exc.message}")
        if problems:
            raise InvalidDescription(problems)

    def check_source(self, source: str, *, fetching: bool = True) -> None:
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        if scheme == "":
            self.check_path(Path(source).expanduser())
        elif scheme == "file":
            self.check_path(Path(unquote(parts.path)))
        elif scheme in _DEFAULT_PORTS:
            self.check_url(source, fetching=fetching)
        # eas:// (our own store), oss:// and s3:// name object stores, not this machine.

    def check_callback(self, url: str) -> None:
        """An alert's callback may go to any web hook, but never to this installation's own
        control API or gateway (a rule must not make the controller call itself)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        if port in self.own_ports and any(_is_this_machine(a) for a in _resolve(host, port)):
            raise ArtefactError(
                f"{parts.scheme}://{host}:{port} is this installation's own control API or "
                f"gateway, which alerts may not call"
            )

    # -- the checks while fetching (artefacts.fetch calls these) --------------------------------
    def check_path(self, path: Path) -> None:
        real = os.path.realpath(path)
        if _within(real, self.data_dir):
            raise ArtefactError(
                f"{path} is inside the installation's data directory, which deployments "
                f"may never read"
            )
        if not any(_within(real, root) for root in self.local_roots):
            allowed = ", ".join(self.local_roots) or "none"
            raise ArtefactError(
                f"{path} is not under a directory deployments may read "
                f"(EAS_ARTEFACT_LOCAL_ROOTS: {allowed})"
            )

    def check_url(self, url: str, *, fetching: bool = True) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise ArtefactError(f"{url}: no host")
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        except ValueError:
            raise ArtefactError(f"{parts.scheme}://{host}: invalid port") from None
        shown = f"{parts.scheme}://{host}:{port}"
        addresses = _resolve(host, port)
        if not addresses:
            if not fetching:
                return
            raise ArtefactError(f"{shown}: host {host!r} does not resolve")
        if port in self.own_ports and any(_is_this_machine(a) for a in addresses):
            raise ArtefactError(
                f"{shown} is this installation's own control API or gateway, which "
                f"deployments may never fetch from"
            )
        if host in self.url_hosts or f"{host}:{port}" in self.url_hosts:
            return
        if ANY_PUBLIC_HOST in self.url_hosts and all(a.is_global for a in addresses):
            return
        where = ", ".join(str(a) for a in addresses)
        raise ArtefactError(
            f"{shown} ({where}) is not a host deployments may fetch from: loopback, "
            f"link-local and private addresses need an entry in EAS_ARTEFACT_URL_HOSTS "
            f"(allowed now: {', '.join(self.url_hosts) or 'none'})"
        )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        found.append(address)
    return found


def _is_this_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.is_loopback or address.is_unspecified:
        return True
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    if ipaddress.ip_address(entry.address.partition("%")[0]) == address:
                        return True
                except ValueError:
                    continue
    return False
