"""What kind of machine this is, from files only: Jetson or not, and its L4T release.

The bottom layer: no subprocess, no import beyond the standard library, nothing that can
hang. Loading a TensorRT engine reads this (the manifest records the L4T release a plan
was built on); the full survey for benchmark reports (nvidia-smi, nvcc, dpkg-query,
nvpmodel, library versions) stays in :mod:`edgecv.bench.environment`.
"""

from __future__ import annotations

import re
from pathlib import Path

_L4T = re.compile(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")


def read_text(path: Path) -> str | None:
    """The file's text, or None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def device_tree_model(root: Path = Path("/")) -> str | None:
    """The board name from the device tree (Jetsons and other ARM boards), or None."""
    for rel in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        if text := (read_text(root / rel) or "").replace("\x00", "").strip():
            return text
    return None


def is_jetson(root: Path = Path("/")) -> bool:
    """True on an NVIDIA Jetson (L4T): ``/etc/nv_tegra_release`` exists or the device tree names the board."""
    model = device_tree_model(root) or ""
    return (root / "etc/nv_tegra_release").is_file() or "Jetson" in model or "NVIDIA" in model


def l4t_release(root: Path = Path("/")) -> str | None:
    """The L4T release from ``/etc/nv_tegra_release`` (``"36.4.3"`` from ``# R36 (release), REVISION: 4.3``), or None."""
    match = _L4T.search(read_text(root / "etc/nv_tegra_release") or "")
    return f"{match[1]}.{match[2]}" if match else None
