"""What eas_pipelines reads from its environment — the only module of the package that does.

The connection to the installation and the declarations directory are settings, read when
a run or the code location needs them (never at import), so the same definitions run in
`dagster dev` on a laptop, in a container with ``EAS_PIPELINES_*`` set, and in tests that
pass the values explicitly:

    EAS_PIPELINES_ENDPOINT            control API, e.g. http://eas:8000
    EAS_PIPELINES_ACCESS_KEY_ID       access key id
    EAS_PIPELINES_ACCESS_KEY_SECRET   access key secret
    EAS_PIPELINES_GATEWAY             gateway URL; default: taken from the service endpoint
    EAS_PIPELINES_DIR                 declarations directory (read by eas_pipelines.definitions)

An object store's credentials come from the variables its declaration names
(:func:`secret`), so they never appear in a declaration file.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "EAS_PIPELINES_"


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    gateway: str | None = None
    dir: Path | None = None

    def declarations_dir(self, default: Path) -> Path:
        return self.dir.expanduser() if self.dir is not None else default


def secret(variable: str) -> str | None:
    """The value of the variable a declaration names for a secret, None when unset or empty."""
    return os.environ.get(variable) or None
