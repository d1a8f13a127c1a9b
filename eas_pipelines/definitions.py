"""The Dagster code location: what ``workspace.yaml`` (and ``dagster dev``) loads.

Declarations are read from ``$EAS_PIPELINES_DIR``, by default the repository's ``examples/``
directory: every ``pipeline.yaml`` (one example, one folder: its declaration, training code
and processor side by side) and every ``*.pipeline.yaml`` under it. The connection to the
installation comes from ``EAS_PIPELINES_*`` or ``~/.eas/config`` when a run starts
(eas_pipelines.settings), so loading the definitions needs no installation.
"""

from __future__ import annotations

from pathlib import Path

from eas_pipelines.factory import load_definitions
from eas_pipelines.settings import PipelineSettings

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "examples"

defs = load_definitions(PipelineSettings().declarations_dir(DEFAULT_DIR))
