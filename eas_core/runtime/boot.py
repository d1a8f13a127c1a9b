"""Start a managed instance: fetch its artefacts into the node's cache, then become the processor.

The backend runs ``python -m eas_core.runtime.boot SPEC.json`` with the runtime settings in
the environment. The spec names each package by URI and digest only; the node's own settings
say where its artefact store and cache are (``EAS_ARTEFACT_STORE``, ``EAS_CACHE_DIR``). Boot
materializes the model and processor packages there (content-addressed, checked against
their digest, unpacked once per node), then ``exec``s the processor in place — the process
id the backend watches stays the same. A Python processor runs with the package's
``ENV/bin/python`` when the package has one (``envhost``: through the allspark stub when
OpenEAS is not installed there), from the package's directory, with every
directory of the package on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from eas_core.artefacts import ArtefactCache, ArtefactStore
from eas_core.config import RuntimeSettings, child_environment
from eas_core.errors import EASError
from eas_core.runtime.workers import report_failure
from eas_core.spec.instance import ArtefactSpec, BootSpec

BOOT_FAILED = 4
# A built-in processor's command: run in this interpreter rather than exec'd (see main).
BUILTIN = (sys.executable, "-m", "eas_core.runtime.builtin")


def _inside(root: Path, relative: str, field: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise EASError(f"{field}: {relative!r} points outside its package")
    if not path.exists():
        raise EASError(f"{field}: {relative!r} does not exist in the package")
    return path


def prepare(
    spec: BootSpec, settings: RuntimeSettings
) -> tuple[list[str], dict[str, str], Path | None]:
    """Materialize artefacts; return the command, its environment and working directory."""

    def tree(artefact: ArtefactSpec) -> Path:
        if settings.artefact_store is None or settings.cache_dir is None:
            unset = "EAS_ARTEFACT_STORE" if settings.artefact_store is None else "EAS_CACHE_DIR"
            raise EASError(f"{unset}: not set, so this node cannot fetch {artefact.uri}")
        blob = ArtefactStore(settings.artefact_store).path_of(artefact.uri)
        cache = ArtefactCache(settings.cache_dir, max_bytes=settings.max_artefact_bytes)
        return cache.materialize(blob, artefact.digest, artefact.filename)

    env: dict[str, str] = {}
    if spec.model is not None:
        model_root = tree(spec.model)
        entry = spec.model_entry or spec.model.filename
        # An unpacked archive's entry defaults to the whole tree.
        if spec.model_entry is None and not (model_root / entry).exists():
            env["EAS_MODEL_ENTRY"] = str(model_root)
        else:
            env["EAS_MODEL_ENTRY"] = str(_inside(model_root, entry, "model_entry"))

    if spec.processor_type == "python":
        assert spec.processor is not None and spec.processor_entry is not None
        root = tree(spec.processor)
        entry_path = _inside(root, spec.processor_entry, "processor_entry")
        env_python = root / "ENV" / "bin" / "python"
        dirs = [str(p) for p in [root, *sorted(d for d in root.rglob("*") if d.is_dir())]]
        dirs = [d for d in dirs if "/ENV/" not in d + "/"] or [str(root)]
        environment = child_environment(env, search_paths={"LD_LIBRARY_PATH": dirs})
        command = [sys.executable, str(entry_path)]
        if env_python.is_symlink() or env_python.exists():
            # envhost checks the ENV interpreter, then runs the entry with it (SDK stub).
            command = [sys.executable, "-m", "eas_core.runtime.envhost", str(env_python)]
            command.append(str(entry_path))
        return command, environment, entry_path.parent
    if spec.processor_type in ("cpp", "java"):
        return _native(spec, tree, env)
    if spec.processor_code:
        return [*BUILTIN], child_environment(env), None
    raise EASError(f"processor_type: {spec.processor_type!r} is not supported by this runtime")


def _native(
    spec: BootSpec, tree: Callable[[ArtefactSpec], Path], env: dict[str, str]
) -> tuple[list[str], dict[str, str], Path | None]:
    """A C/C++ or Java processor runs in this runtime (eas_core.runtime.native), from its
    package's directory, with every package directory on LD_LIBRARY_PATH for the .so files
    it depends on."""
    if spec.processor is None:
        raise EASError(f"processor_path: required for a {spec.processor_type} processor")
    root = tree(spec.processor)
    if root.is_file():
        root = root.parent
    if spec.processor_type == "cpp":
        assert spec.processor_entry is not None
        entry = str(_inside(root, spec.processor_entry, "processor_entry"))
    else:
        entry = spec.processor_mainclass or ""
    env |= {"EAS_NATIVE_TYPE": spec.processor_type or "", "EAS_NATIVE_ROOT": str(root)}
    env["EAS_NATIVE_ENTRY"] = entry
    dirs = [str(p) for p in [root, *sorted(d for d in root.rglob("*") if d.is_dir())]]
    environment = child_environment(env, search_paths={"LD_LIBRARY_PATH": dirs})
    return [sys.executable, "-m", "eas_core.runtime.native"], environment, root


def main(argv: list[str]) -> None:
    settings = RuntimeSettings()
    try:
        spec = BootSpec.model_validate(json.loads(Path(argv[1]).read_text()))
        command, env, cwd = prepare(spec, settings)
    except (EASError, OSError, ValueError) as exc:
        message = exc.message if isinstance(exc, EASError) else str(exc)
        report_failure(settings, f"cannot prepare the instance: {message}")
        sys.exit(BOOT_FAILED)
    if cwd is not None:
        os.chdir(cwd)
    if tuple(command) == BUILTIN:
        # Same interpreter, same code: go on in this process rather than start a fresh one
        # that imports the settings and pydantic again (a few hundred ms of a cold start).
        os.environ.clear()
        os.environ.update(env)
        from eas_core.runtime import builtin

        builtin.main()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv)
