"""nginx as the ceiling: what one worker process of a C server does with the same requests.

It does not echo: ``$request_body`` is only filled where nginx proxies the body on, so the
location answers ``return 200`` with a fixed body, the bytes the workload expects back (the
100-byte payload for echo, the model's answer for the others), after checking the token in
``Authorization``. That is HTTP parsing, the token check and a fixed answer: no work that
depends on the body, which is why it is a ceiling and not a peer.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

# Characters a fixed answer may hold inside nginx's single-quoted string.
SAFE = re.compile(rb"^[^'\\\r\n$]*$")


def config(prefix: Path, port: int, token: str, answer: bytes, content_type: str) -> Path:
    """Write ``prefix/nginx.conf`` for one worker on 127.0.0.1:``port``; return its path."""
    if not SAFE.match(answer):
        raise ValueError("the fixed answer holds a quote, backslash, '$' or line break")
    if not re.fullmatch(r"[A-Za-z0-9_.=+/-]+", token):
        raise ValueError("the token holds characters nginx would need quoted")
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    text = f"""\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type {content_type};
            if ($http_authorization != "{token}") {{
                return 401 'invalid or missing token';
            }}
            return 200 '{answer.decode()}';
        }}
    }}
}}
"""
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def command(conf: Path) -> list[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", str(conf.parent), "-c", str(conf)]
