"""A small HTTP/1.1 kit on httptools for the two hot paths: the gateway and the runtime.

No web framework on the predict path: the server parses with httptools, hands each complete
request to one async handler and writes precomputed status lines, within the limits a
``Limits`` value sets (sizes, timeouts, connections, buffered bytes); the upstream pool
keeps keep-alive connections to instances and says of each failure whether the request can
have reached the instance.
"""

from eas_core.http.limits import Limits, limits_from
from eas_core.http.server import HttpServer, Request, Response
from eas_core.http.upstream import UpstreamError, UpstreamPool, UpstreamResponse

__all__ = [
    "HttpServer",
    "Limits",
    "Request",
    "Response",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamResponse",
    "limits_from",
]
