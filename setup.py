"""Build hook: ship the trained models and the demo video inside the wheel (``edgecv/_models``).

They live in ``models/`` at the repository root (where the README, the training scripts and the
tests use them); a wheel built from a checkout or an sdist carries a copy, so ``pip install edgecv``
then ``edgecv run`` works with no checkout. Editable installs read ``models/`` directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = (
    "shapes-det.onnx",
    "shapes-det.pt",
    "shapes-det.md",
    "shapes-seg.onnx",
    "shapes-seg.pt",
    "shapes-seg.md",
    "demo.mp4",
    "demo.mp4.gt.json",
)


class BuildWithModels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "models"
        target = Path(self.build_lib) / "edgecv" / "_models"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            if not (source / name).is_file():
                raise FileNotFoundError(f"shipped file models/{name} is missing; cannot build a wheel that runs the demo")
            shutil.copy2(source / name, target / name)


setup(cmdclass={"build_py": BuildWithModels})
