"""Where the shipped models and demo media live.

In order: ``EDGECV_MODELS`` (a folder of your own, e.g. models copied to the robot);
``edgecv/_models`` inside an installed wheel (``setup.py`` copies them there, so
``pip install edgecv`` runs the demo); the repository's ``models/`` folder in a
source checkout or editable install.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecv.errors import ArtifactError

DEFAULT_MODELS = {"detect": "shapes-det", "segment": "shapes-seg"}
DEMO_VIDEO = "demo.mp4"


PACKAGED = Path(__file__).resolve().parent / "_models"
CHECKOUT = Path(__file__).resolve().parent.parent / "models"


def models_dir() -> Path:
    env = os.environ.get("EDGECV_MODELS")
    if env:
        return Path(env)
    return PACKAGED if PACKAGED.is_dir() else CHECKOUT


def shipped(name: str, suffix: str = ".onnx") -> Path:
    """Path of a shipped file (``shapes-det`` + ``.onnx``), with a clear error when it is absent."""
    path = models_dir() / f"{name}{suffix}"
    if not path.exists():
        raise ArtifactError(
            f"shipped file {path} not found",
            hint="reinstall edgecv from a wheel (it carries the shipped models), run it from its source checkout, "
            "or set EDGECV_MODELS to the folder holding them",
        )
    return path


def demo_video() -> Path:
    return shipped("demo", ".mp4")
