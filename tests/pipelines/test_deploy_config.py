"""deploy/dagster: the production instance config, loaded with Dagster's own loader (no
PostgreSQL, no Docker engine needed), and the compose file that runs it beside the core.

A typo anywhere in dagster.yaml — a top-level key, a storage field, a launcher option —
fails here, not on the first production deploy.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData

from eas_pipelines.assets import SERVICE_TAG

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster"
ENV = {
    "DAGSTER_POSTGRES_HOST": "postgres",
    "DAGSTER_POSTGRES_PORT": "5432",
    "DAGSTER_POSTGRES_USER": "dagster",
    "DAGSTER_POSTGRES_PASSWORD": "secret",
    "DAGSTER_POSTGRES_DB": "dagster",
    "EAS_CONFIG": "/eas-client/config",
    "EAS_PIPELINES_GATEWAY": "http://eas:8080",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))


def processed(data: ConfigurableClassData) -> dict[str, Any]:
    """A configurable class's config checked against that class's own schema, with the
    environment variables it names resolved — without instantiating it (no connection)."""
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(klass.config_type(), yaml.safe_load(data.config_yaml) or {})
    assert result.success, [e.message for e in result.errors or []]
    return dict(result.value or {})


def load(directory: Path) -> tuple[InstanceRef, dict[str, Any]]:
    ref = InstanceRef.from_dir(str(directory))
    # Classes that connect to nothing when built are built for real.
    coordinator = (
        ref.run_coordinator_data.rehydrate(as_type=object) if ref.run_coordinator_data else None
    )
    assert ref.run_launcher_data is not None
    launcher = ref.run_launcher_data.rehydrate(as_type=object)
    storage = processed(ref.storage_data) if ref.storage_data else {}
    return ref, {"coordinator": coordinator, "launcher": launcher, "storage": storage}


def test_instance_config_loads_with_postgres_storage_docker_launcher_and_run_queue() -> None:
    ref, built = load(DEPLOY)

    assert ref.storage_data is not None
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres",
        "DagsterPostgresStorage",
    )
    assert built["storage"]["postgres_db"]["hostname"] == "postgres"
    assert built["storage"]["postgres_db"]["password"] == "secret"
    assert type(built["coordinator"]).__name__ == "QueuedRunCoordinator"
    assert type(built["launcher"]).__name__ == "DockerRunLauncher"
    assert built["launcher"].networks == ["openeas"]


def test_instance_config_allows_one_run_per_service() -> None:
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    [limit] = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {"key": SERVICE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert config["concurrency"]["pools"]["default_limit"] == 1


@pytest.mark.parametrize(
    ("original", "typo"),
    [
        ("run_coordinator:", "run_cordinator:"),
        ("tag_concurrency_limits:", "tag_concurency_limits:"),
        ("      db_name:", "      db_nmae:"),
        ("    network: openeas", "    netwrok: openeas"),
        ("dequeue_use_threads: true", "dequeue_use_threads: yes please"),
    ],
)
def test_a_typo_in_the_instance_config_fails_to_load(
    tmp_path: Path, original: str, typo: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (DEPLOY / "dagster.yaml").read_text()
    assert original in text
    (broken / "dagster.yaml").write_text(text.replace(original, typo, 1))

    with pytest.raises(DagsterInvalidConfigError):
        load(broken)


def test_compose_runs_dagster_beside_the_core_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "eas", "pipelines", "dagster-webserver", "dagster-daemon"}
    assert services["eas"]["command"][:2] == ["eascmd", "server"]
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["dagster-daemon"]["volumes"]
    assert services["postgres"]["image"].startswith("postgres")
    for name in ("pipelines", "dagster-webserver", "dagster-daemon"):
        environment = services[name]["environment"]
        assert set(ENV) <= set(environment), name
    # What the run launcher mounts and joins must be what compose creates.
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    assert compose["networks"]["openeas"]["name"] == launcher["network"]
    named = {v["name"] for v in compose["volumes"].values() if v and "name" in v}
    mounted = {m.split(":")[0] for m in launcher["container_kwargs"]["volumes"]}
    assert mounted <= named
    # The webserver and the daemon find the code server where compose runs it.
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    assert location["grpc_server"]["host"] == "pipelines"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"--port", "{location["grpc_server"]["port"]}"' in dockerfile


def test_the_docker_workspace_and_instance_config_are_what_the_image_installs(
    tmp_path: Path,
) -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml ${DAGSTER_HOME}/" in (
        dockerfile
    )
    # The pipelines, oss:// stores and every built-in processor (the example serves PMML).
    assert '".[pipelines,all]"' in dockerfile and "default-jre-headless" in dockerfile
    # The image's DAGSTER_HOME holds exactly this instance config: load it from a copy there.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    load(home)


def test_both_instance_configs_switch_off_telemetry_and_the_first_visit_pop_up(
    tmp_path: Path,
) -> None:
    """deploy/dagster and the instance `eascmd server --pipelines` writes: no telemetry, no
    "join the community" pop-up — settings this Dagster's own schema accepts."""
    from dagster import DagsterInstance

    from eas_core.cli.server import DAGSTER_INSTANCE

    ref, _ = load(DEPLOY)
    local = tmp_path / "local"
    local.mkdir()
    (local / "dagster.yaml").write_text(DAGSTER_INSTANCE)
    for settings in (ref.settings, InstanceRef.from_dir(str(local)).settings):
        assert settings["telemetry"] == {"enabled": False}
        assert settings["nux"] == {"enabled": False}
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(local))) as instance:
        assert (instance.telemetry_enabled, instance.nux_enabled) == (False, False)
