"""Object stores on loopback for the ``oss://`` and ``s3://`` tests.

S3: moto's server mode, a real S3-compatible HTTP server in a thread. OSS: a small server
written here that speaks the part of the OSS API ``model_path`` reading and the pipelines'
oss model store use — HEAD, GET and a simple PUT of an object (answered with its ETag, the
MD5 of its bytes, as OSS does), ListObjects (V1) with prefix, marker and max-keys — and
refuses every request
whose V1 signature does not check: ``Authorization: OSS <id>:<base64 HMAC-SHA1>`` over
VERB, Content-MD5, Content-Type, Date, the canonicalized ``x-oss-*`` headers and the
canonicalized resource (``/bucket/key`` plus signed sub-resources), as OSS documents it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from tests.support.installation import free_port

# Query parameters that are part of the signed resource (OSS V1).
SIGNED_SUBRESOURCES = frozenset(
    [
        "acl",
        "uploads",
        "location",
        "cors",
        "logging",
        "website",
        "referer",
        "lifecycle",
        "delete",
        "append",
        "tagging",
        "objectMeta",
        "uploadId",
        "partNumber",
        "security-token",
        "position",
        "img",
        "style",
        "styleName",
        "replication",
        "replicationProgress",
        "replicationLocation",
        "cname",
        "bucketInfo",
        "comp",
        "qos",
        "live",
        "status",
        "vod",
        "startTime",
        "endTime",
        "symlink",
        "x-oss-process",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "udf",
        "udfName",
        "udfImage",
        "udfId",
        "udfImageDesc",
        "udfApplication",
        "udfApplicationLog",
        "restore",
        "callback",
        "callback-var",
        "continuation-token",
        "versionId",
        "versioning",
        "versions",
        "policy",
        "requestPayment",
        "encryption",
        "worm",
        "wormId",
        "wormExtend",
    ]
)


@dataclass
class OSSServer:
    """Buckets of objects served with OSS's API; ``requests`` records (verb, path, status)."""

    access_key_id: str
    access_key_secret: str
    buckets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signature(self, verb: str, headers: Any, resource: str) -> str:
        oss_headers = sorted(
            (k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-oss-")
        )
        canonical = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        date = headers.get("x-oss-date") or headers.get("Date", "")
        text = "\n".join(
            [
                verb,
                headers.get("Content-MD5", ""),
                headers.get("Content-Type", ""),
                date,
                canonical + resource,
            ]
        )
        digest = hmac.new(self.access_key_secret.encode(), text.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message><RequestId>test</RequestId>"
        f"<HostId>127.0.0.1</HostId></Error>"
    ).encode()


def _etag(data: bytes) -> str:
    """A simple upload's ETag, as OSS gives it: the upper-case MD5 hex of the bytes."""
    return hashlib.md5(data).hexdigest().upper()


def _handler(server: OSSServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def answer(
            self,
            status: int,
            body: bytes = b"",
            content_type: str = "application/xml",
            etag: str | None = None,
        ) -> None:
            server.requests.append((self.command, self.path, status))
            self.send_response(status)
            if etag is not None:
                self.send_header("ETag", f'"{etag}"')
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-oss-request-id", "test")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def route(self) -> None:
            parts = urlsplit(self.path)
            bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            signed = sorted((k, v) for k, v in query.items() if k in SIGNED_SUBRESOURCES)
            sub = "&".join(f"{k}={v}" if v else k for k, v in signed)
            resource = f"/{bucket}/{key}" + (f"?{sub}" if sub else "")
            authorization = self.headers.get("Authorization", "")
            if not self.headers.get("Date") and not self.headers.get("x-oss-date"):
                return self.answer(403, _error("AccessDenied", "the Date header is required"))
            expected = f"OSS {server.access_key_id}:" + server.signature(
                self.command, self.headers, resource
            )
            if not hmac.compare_digest(authorization, expected):
                return self.answer(
                    403,
                    _error("SignatureDoesNotMatch", "the request signature does not match"),
                )
            objects = server.buckets.get(bucket)
            if objects is None:
                return self.answer(404, _error("NoSuchBucket", f"no bucket {bucket}"))
            if self.command == "PUT" and key:
                length = int(self.headers.get("Content-Length") or 0)
                objects[key] = self.rfile.read(length)
                return self.answer(200, etag=_etag(objects[key]))
            if not key:
                return self.list(bucket, objects, query)
            if key not in objects:
                return self.answer(404, _error("NoSuchKey", f"no object {key}"))
            self.answer(200, objects[key], "application/octet-stream")

        def list(self, bucket: str, objects: dict[str, bytes], query: dict[str, str]) -> None:
            prefix = query.get("prefix", "")
            marker = query.get("marker", "")
            max_keys = int(query.get("max-keys") or 100)
            url = query.get("encoding-type") == "url"
            keys = sorted(k for k in objects if k.startswith(prefix) and k > marker)
            page, truncated = keys[:max_keys], len(keys) > max_keys

            def name(key: str) -> str:
                return escape(quote(key, safe="/") if url else key)

            contents = "".join(
                f"<Contents><Key>{name(k)}</Key><LastModified>2025-01-01T00:00:00.000Z"
                f'</LastModified><ETag>"{_etag(objects[k])}"</ETag>'
                f"<Type>Normal</Type><Size>{len(objects[k])}</Size>"
                f"<StorageClass>Standard</StorageClass></Contents>"
                for k in page
            )
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>{bucket}</Name>'
                f"<Prefix>{name(prefix)}</Prefix><Marker>{name(marker)}</Marker>"
                f"<MaxKeys>{max_keys}</MaxKeys><Delimiter></Delimiter>"
                + ("<EncodingType>url</EncodingType>" if url else "")
                + f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
                + (f"<NextMarker>{name(page[-1])}</NextMarker>" if truncated else "")
                + contents
                + "</ListBucketResult>"
            )
            self.answer(200, body.encode())

        do_GET = route
        do_HEAD = route
        do_PUT = route

    return Handler


@contextmanager
def oss_server(access_key_id: str, access_key_secret: str) -> Iterator[OSSServer]:
    server = OSSServer(access_key_id, access_key_secret, port=free_port())
    httpd = ThreadingHTTPServer(("127.0.0.1", server.port), _handler(server))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
