"""What one HTTP server lets a caller hold: bytes, connections and time.

``Limits`` is one frozen value handed to the server; ``limits_from`` reads it from the
gateway's or an instance's settings, whose fields carry the same names. ``BodyBudget``
counts the request bytes a server process holds in memory at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
from dataclasses import dataclass, fields
from typing import Any

log = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    # The request line's target (path and query) → 414 above this.
    max_url_bytes: int = 8 * KiB
    # Header names and values together, and how many header fields → 431 above these.
    max_header_bytes: int = 64 * KiB
    max_headers: int = 100
    # Request bodies held in memory by the whole process at once; a request whose body does
    # not fit is answered 503 before any of it is read.
    max_buffered_bytes: int = 512 * MiB
    # Seconds a connection may wait for the first byte of a request (keep-alive idle),
    # take to send a request's head (slowloris), and go without body bytes mid-body.
    idle_timeout: float = 60.0
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    # Open connections; over it an idle keep-alive connection is closed to make room, and
    # when none is idle the new connection is answered 503 and closed.
    max_connections: int = 10_000
    # Parsed requests waiting behind the one being answered before reading (and parsing)
    # pauses; the 1 KiB slice being parsed when it fills may hold a few more.
    max_pipeline: int = 32
    # Bytes of answers queued for a client that does not read them: reading pauses above
    # the high mark and resumes below the low mark.
    write_high_water: int = 64 * KiB
    write_low_water: int = 16 * KiB
    # Seconds a refused connection keeps reading (and dropping) what the client still
    # sends, so that the client reads the refusal instead of a connection reset.
    linger_timeout: float = 2.0

    def __post_init__(self) -> None:
        if self.write_low_water > self.write_high_water:
            raise ValueError(
                f"write_low_water ({self.write_low_water}) must not exceed write_high_water "
                f"({self.write_high_water})"
            )


def limits_from(settings: Any) -> Limits:
    """The limits named by ``settings``' fields of the same names (GatewaySettings,
    RuntimeSettings); fields it does not have keep their defaults."""
    values = {
        f.name: getattr(settings, f.name) for f in fields(Limits) if hasattr(settings, f.name)
    }
    return Limits(**values)


def open_files_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (up to the hard
    limit) and return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit to %d: %s", target, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else wanted


class BodyBudget:
    """Request bytes the process holds, against ``max_buffered_bytes``.

    A request reserves its declared body size before any of it is read and gives it back
    once answered. Freed large buffers often stay in the C allocator's heap (its threshold
    for returning big blocks to the system rises as they are freed), so after many bytes
    were given back and nothing is held any more, the heap is trimmed.
    """

    TRIM_AFTER = 32 * MiB

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.freed_since_trim = 0

    def reserve(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size
        self.freed_since_trim += size
        if self.held == 0 and self.freed_since_trim >= self.TRIM_AFTER:
            self.freed_since_trim = 0
            trim_heap()


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_TRIM = _malloc_trim()


def trim_heap() -> None:
    """Hand the allocator's free memory back to the system (glibc's malloc_trim)."""
    if _TRIM is not None:
        _TRIM(0)
