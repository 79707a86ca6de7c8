"""Where the shipped models and demo media live.

They sit in the repository's ``models/`` folder (next to the ``edgecv`` package in a
source checkout or editable install). ``EDGECV_MODELS`` points elsewhere, e.g. when
edgecv was installed from a wheel and the models were copied to the robot.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecv.errors import ArtifactError

DEFAULT_MODELS = {"detect": "shapes-det", "segment": "shapes-seg"}
DEMO_VIDEO = "demo.mp4"


def models_dir() -> Path:
    env = os.environ.get("EDGECV_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def shipped(name: str, suffix: str = ".onnx") -> Path:
    """Path of a shipped file (``shapes-det`` + ``.onnx``), with a clear error when it is absent."""
    path = models_dir() / f"{name}{suffix}"
    if not path.exists():
        raise ArtifactError(
            f"shipped file {path} not found",
            hint="run edgecv from its source checkout, or set EDGECV_MODELS to the folder holding the shipped models",
        )
    return path


def demo_video() -> Path:
    return shipped("demo", ".mp4")
