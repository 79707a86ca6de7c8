"""Ultralytics .pt checkpoints: recognised without unpickling, exported through the ultralytics package when present."""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tiny_models import constant_yolo, yolo_raw
from typer.testing import CliRunner

from edgecv.cli import app
from edgecv.export.ultralytics import is_ultralytics_checkpoint


def _fake_checkpoint(path: Path) -> Path:
    """The layout of a torch zip archive whose pickle names ultralytics classes (never unpickled here)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("yolov8n/data.pkl", b"\x80\x02cultralytics.nn.tasks\nDetectionModel\nq\x00.")
        archive.writestr("yolov8n/version", b"3\n")
    return path


def test_recognised_by_its_class_names(tmp_path: Path, det_onnx: Path) -> None:
    assert is_ultralytics_checkpoint(_fake_checkpoint(tmp_path / "yolov8n.pt"))
    assert not is_ultralytics_checkpoint(det_onnx.with_suffix(".pt"))  # an edgecv checkpoint
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    assert not is_ultralytics_checkpoint(tmp_path / "junk.pt")


def test_without_ultralytics_the_error_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # not importable, whatever this machine has
    result = CliRunner().invoke(app, ["export", str(_fake_checkpoint(tmp_path / "yolov8n.pt"))])
    text = " ".join(result.output.split())
    assert result.exit_code == 3 and "pip install ultralytics" in text and "Traceback" not in text


def test_load_checkpoint_points_to_export(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from edgecv.errors import ArtifactError
    from edgecv.zoo.checkpoint import load_checkpoint

    with pytest.raises(ArtifactError, match="Ultralytics checkpoint") as info:
        load_checkpoint(_fake_checkpoint(tmp_path / "yolov8n.pt"))
    assert "edgecv export" in info.value.hint


def test_with_ultralytics_the_export_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``ultralytics`` with the real API shape: YOLO(path).export(format="onnx", ...) -> path."""
    pytest.importorskip("onnx")
    package = tmp_path / "site" / "ultralytics"
    package.mkdir(parents=True)
    raw = yolo_raw([(16.0, 16.0, 8.0, 8.0)], [[0.9, 0.05]], anchors=21)
    onnx_path = constant_yolo(tmp_path / "made.onnx", raw, props={"names": "{0: 'person', 1: 'bicycle'}", "stride": "32"})
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        calls = []
        class YOLO:
            def __init__(self, path):
                self.path = path
            def export(self, **options):
                calls.append(options)
                assert options["format"] == "onnx"
                return {str(onnx_path)!r}
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "ultralytics", raising=False)
    checkpoint = _fake_checkpoint(tmp_path / "yolov8n.pt")
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--imgsz", "32", "-o", str(tmp_path / "out.onnx")])
    assert result.exit_code == 0, result.output
    assert "YOLOv8/11 detector" in " ".join(result.output.split())
    import ultralytics

    assert ultralytics.calls == [{"format": "onnx", "dynamic": True, "opset": 18, "simplify": True, "imgsz": [32, 32]}]
    import edgecv

    with edgecv.load(tmp_path / "out.onnx") as model:
        assert model.names == ("person", "bicycle")
        dets = model(np.zeros((32, 32, 3), np.uint8))
        assert dets.class_names == ["person"]
