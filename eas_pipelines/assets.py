"""The two assets of a pipeline: ``<service>/model`` and ``<service>/deployment``.

``model`` runs the user's training callable and puts its artefact into the store under a new
immutable URI; its metadata holds the URI and the metrics. ``deployment`` makes a model URI
live (``config.model_uri``, else the latest ``model`` materialization) through a rollout and
records the live version, endpoint and previous version, with the ``smoke`` check's result
(and the ``shadow`` and ``canary`` checks', for a blue-green pipeline that declares them). Selected
alone, the ``smoke`` check tests the live version without deploying anything.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of op, asset
# and sensor parameters (config classes, resources) at definition time, as objects.

import hashlib
import importlib
import importlib.util
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
from pydantic import Field

from eas_core.errors import EASError
from eas_pipelines.checks import (
    SMOKE,
    canary_check_spec,
    deployment_key,
    extra_results,
    failed_result,
    failure_metadata,
    live_result,
    model_key,
    passed_result,
    shadow_check_spec,
    smoke_check_spec,
)
from eas_pipelines.declaration import PipelineDeclaration
from eas_pipelines.resources import EASResource
from eas_pipelines.rollout import Rollout, RolloutFailed
from eas_pipelines.stores import open_store

SERVICE_TAG = "eas/service"


def pool(service: str) -> str:
    """The concurrency pool of a service's rollout steps (limit it to 1 in the instance)."""
    return f"eas/{service}"


def import_callable(reference: str, directory: Path | None = None) -> Callable[..., Any]:
    """``"package.module:function"`` → the function, imported only when a run needs it: from
    ``directory`` (the pipeline file's) when the module is there, else from the import path."""
    module_name, _, attr = reference.partition(":")
    try:
        module = _from_directory(module_name, directory) if directory is not None else None
        if module is None:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        where = f"{directory} or the import path" if directory is not None else "the import path"
        raise EASError(f"train: cannot import {module_name!r} from {where} ({exc})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise EASError(f"train: {module_name!r} has no callable {attr!r}")
    return function  # type: ignore[no-any-return]


def _from_directory(module_name: str, directory: Path) -> ModuleType | None:
    """The module ``a.b`` as ``directory/a/b.py`` (or ``a/b/__init__.py``); None if absent.

    It is registered under a name made from its file, so the ``train`` modules of two
    pipelines never share one entry in ``sys.modules``; the directory is on the import path
    while it loads, so it imports the modules beside it as it would when run from there."""
    parts = module_name.split(".")
    path = directory.joinpath(*parts).with_suffix(".py")
    if not path.is_file():
        path = directory.joinpath(*parts, "__init__.py")
        if not path.is_file():
            return None
    unique = f"_eas_pipeline_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    sys.path.insert(0, str(directory))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    finally:
        sys.path.remove(str(directory))
    return module


def trained(result: Any, reference: str) -> tuple[Path, dict[str, float]]:
    """Check what a training callable returned: ``(artefact path, {metric: number})``."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise EASError(f"train: {reference} must return (artefact_path, metrics)")
    path, metrics = Path(result[0]), result[1]
    if not path.exists():
        raise EASError(f"train: {reference} returned {path}, which does not exist")
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) for k, v in metrics.items()
    ):
        raise EASError(f"train: {reference} must return metrics as {{name: number}}")
    return path, {k: float(v) for k, v in metrics.items()}


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, Any] | None:
    """The plain values of an asset's latest materialization metadata."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def build_model_asset(declaration: PipelineDeclaration) -> dg.AssetsDefinition:
    service = declaration.name

    @dg.asset(
        key=model_key(service),
        group_name=service,
        description=f"The trained model of {service}: `{declaration.train}`, stored in the "
        f"{declaration.store.kind} store under its own immutable URI.",
        kinds={"python"},
    )
    def model(context: dg.AssetExecutionContext, eas: EASResource) -> dg.MaterializeResult:
        train = import_callable(declaration.train, declaration.base_dir)
        with tempfile.TemporaryDirectory(prefix=f"{service}-train-") as tmp:
            context.log.info(f"training with {declaration.train}")
            path, metrics = trained(train(Path(tmp)), declaration.train)
            client = eas.client() if declaration.store.kind == "installation" else None
            try:
                stored = open_store(declaration, client).put(path, service)
            finally:
                if client is not None:
                    client.close()
        context.log.info(f"stored {stored.uri} ({stored.size} bytes); metrics {metrics}")
        return dg.MaterializeResult(
            metadata={
                "uri": stored.uri,
                "size": stored.size,
                "store": declaration.store.kind,
                "metrics": dg.MetadataValue.json(metrics),
                **{f"metric_{name}": value for name, value in metrics.items()},
            }
        )

    return model


class DeployConfig(dg.Config):
    model_uri: str | None = Field(
        default=None,
        description="The model to deploy (the service's model_path): a store URI, eas://, "
        "oss://, http(s):// or a path the installation can read. Default: the latest "
        "materialization of <service>/model.",
    )


def build_deployment_asset(declaration: PipelineDeclaration) -> dg.AssetsDefinition:
    service = declaration.name
    key = deployment_key(service)

    @dg.multi_asset(
        name=f"{service}__deployment",
        specs=[
            dg.AssetSpec(
                key,
                deps=[model_key(service)],
                group_name=service,
                description=f"The live version of service {service}: a model URI rolled "
                f"out ({declaration.rollout.strategy}), smoke-tested through the gateway, "
                "rolled back when a check fails.",
                kinds={"openeas"},
                skippable=True,
            )
        ],
        check_specs=[
            spec
            for spec in (
                smoke_check_spec(declaration),
                shadow_check_spec(declaration),
                canary_check_spec(declaration),
            )
            if spec is not None
        ],
        can_subset=True,
        pool=pool(service),
    )
    def deployment(
        context: dg.AssetExecutionContext, config: DeployConfig, eas: EASResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with eas.client() as client:
            rollout = Rollout(declaration, eas, client, context.log)
            if key not in context.selected_asset_keys:
                smoke = dg.AssetCheckKey(key, SMOKE)
                if smoke in context.selected_asset_check_keys:
                    info = rollout.describe()
                    yield live_result(rollout.smoke(info), info.current_version)
                else:  # shadow/canary alone: they compare a candidate, and there is none
                    context.log.info(
                        "the shadow and canary checks run during a blue-green rollout only"
                    )
                return
            uri = config.model_uri
            if not uri:
                uri = (latest_metadata(context.instance, model_key(service)) or {}).get("uri")
                if not uri:
                    raise dg.Failure(
                        f"no model to deploy: give config.model_uri or materialize "
                        f"{model_key(service).to_user_string()} first"
                    )
            context.log.info(f"deploying {uri} to {service} ({declaration.rollout.strategy})")
            try:
                outcome = rollout.deploy(str(uri), latest_metadata(context.instance, key))
            except RolloutFailed as failed:
                metadata = failure_metadata(declaration, failed)
                context.log.error(
                    f"{failed}; service {service} "
                    + (
                        f"serves version {failed.state.version}"
                        if failed.state
                        else "state unknown"
                    )
                    + f"; details: { {k: getattr(v, 'value', v) for k, v in metadata.items()} }"
                )
                if failed.state is not None:
                    yield dg.MaterializeResult(
                        asset_key=key,
                        metadata={**failed.state.metadata(), "failed_model_uri": failed.model_uri},
                        check_results=[
                            failed_result(declaration, failed),
                            *extra_results(failed.shadow, failed.canary),
                        ],
                    )
                else:
                    yield failed_result(declaration, failed)
                raise dg.Failure(
                    description=f"{service}: {failed} — "
                    + ("rolled back" if failed.rolled_back else "not rolled back"),
                    metadata=metadata,
                ) from None
        for note in outcome.notes:
            context.log.info(note)
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                **outcome.state.metadata(),
                "model_uri": str(uri),
                "new_version": outcome.new_version,
                "strategy": declaration.rollout.strategy,
            },
            check_results=[passed_result(outcome), *extra_results(outcome.shadow, outcome.canary)],
        )

    return deployment
