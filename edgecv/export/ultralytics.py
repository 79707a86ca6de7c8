"""Ultralytics ``.pt`` checkpoints: exported by the ``ultralytics`` package itself, then adopted.

An Ultralytics checkpoint is a pickle of its own model classes, which only the
``ultralytics`` package can load (and ``torch.load(weights_only=True)`` refuses), so
edgecv does not unpickle it: it recognises the file from the class names inside the
archive, asks ``ultralytics`` to export ONNX, and adopts that file like any foreign
ONNX (recognised layout, edgecv metadata, identical-output check). ``ultralytics`` stays
optional (it is AGPL-3.0 and pulls its own dependencies); without it the error says so.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from edgecv._optional import require


def is_ultralytics_checkpoint(path: Path) -> bool:
    """True when ``path`` is a torch zip archive whose pickle references ``ultralytics`` classes (read, not unpickled)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return any(b"ultralytics" in archive.read(n) for n in pickles)
    except (OSError, zipfile.BadZipFile):
        return False


def export_ultralytics(
    source: Path,
    out: Path,
    *,
    imgsz: tuple[int, int] | None = None,
    dynamic: bool = True,
    opset: int = 18,
    simplify: bool = True,
    names: Sequence[str] | None = None,
):  # type: ignore[no-untyped-def]
    """Export ``source`` with ``ultralytics`` and adopt the ONNX into ``out``. Returns the :class:`AdoptReport`.

    Raises:
        MissingDependencyError: ``ultralytics`` is not installed.
    """
    require("ultralytics")
    from ultralytics import YOLO

    from edgecv.export.adopt import adopt_onnx

    with tempfile.TemporaryDirectory(prefix="edgecv-ultralytics-") as tmp:
        local = Path(tmp) / Path(source).name  # Ultralytics writes its ONNX next to the weights
        shutil.copy(source, local)
        options = {"format": "onnx", "dynamic": dynamic, "opset": opset, "simplify": simplify}
        if imgsz is not None:
            options["imgsz"] = list(imgsz)
        exported = YOLO(str(local)).export(**options)
        return adopt_onnx(Path(exported), Path(out), names=names)
