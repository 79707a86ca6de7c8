"""YOLOX raw-grid ONNX files: adopted with --layout yolox, decoded on the host, YOLOX's own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from tiny_models import constant_yolo  # noqa: E402

import edgecv  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.export.adopt import adopt_onnx  # noqa: E402
from edgecv.vision.decode import yolox_to_yolov8  # noqa: E402
from edgecv.vision.letterbox import letterbox  # noqa: E402

SIZE = 64  # grids 8x8 + 4x4 + 2x2 = 84 anchors


def _raw() -> np.ndarray:
    raw = np.zeros((1, 84, 7), np.float32)
    raw[:, :, 2:4] = -5.0  # tiny boxes elsewhere, scores 0
    # stride-16 grid (4x4) starts at anchor 64; cell (gx=2, gy=1) is anchor 64 + 1*4 + 2 = 70
    raw[0, 70] = [0.5, 0.25, np.log(1.5), np.log(0.5), 0.9, 0.1, 0.8]  # class 1, score 0.72
    return raw


def test_decode_matches_yolox_postprocess() -> None:
    decoded = yolox_to_yolov8(_raw(), (SIZE, SIZE))
    assert decoded.shape == (1, 6, 84)
    cx, cy, w, h, s0, s1 = decoded[0, :, 70]
    assert (cx, cy, w, h) == pytest.approx(((2 + 0.5) * 16, (1 + 0.25) * 16, 1.5 * 16, 0.5 * 16))
    assert (s0, s1) == pytest.approx((0.09, 0.72))
    with pytest.raises(ValueError, match="84 anchors"):
        yolox_to_yolov8(np.zeros((1, 80, 7)), (SIZE, SIZE))


def test_top_left_letterbox() -> None:
    image = np.full((32, 64, 3), 200, np.uint8)
    boxed, t = letterbox(image, (SIZE, SIZE), align="top-left")
    assert (t.pad_x, t.pad_y) == (0.0, 0.0) and boxed[:32].min() == 200 and boxed[32:].max() == 114
    np.testing.assert_allclose(t.boxes_to_src(np.array([[8, 8, 16, 16]], np.float32)), [[8, 8, 16, 16]])


def test_adopted_yolox_detects_in_original_pixels(tmp_path: Path) -> None:
    source = constant_yolo(tmp_path / "yolox_s.onnx", _raw(), size=SIZE)  # a constant (1, 84, 5 + nc) output: a YOLOX raw grid
    report = adopt_onnx(source, tmp_path / "yolox.edgecv.onnx", names=["a", "b"], layout="yolox")
    assert report.meta.output_format == "yolox" and report.meta.color == "BGR" and report.meta.pad_align == "top-left"
    with edgecv.load(report.path, conf=0.5) as model:
        frame = np.zeros((64, 128, 3), np.uint8)  # scale 0.5, padded at the bottom only
        dets = model(frame)
        feeds, _ = model.preprocess(np.full((64, 64, 3), 255, np.uint8))
        assert next(iter(feeds.values())).max() == pytest.approx(255.0, abs=1e-3)  # YOLOX takes 0-255, no normalization
    assert dets.class_names == ["b"] and dets.scores[0] == pytest.approx(0.72)
    cx, cy, w, h = 40.0, 20.0, 24.0, 8.0  # in model pixels; / 0.5 back to the frame
    np.testing.assert_allclose(dets.xyxy[0], [(cx - w / 2) * 2, (cy - h / 2) * 2, (cx + w / 2) * 2, (cy + h / 2) * 2], atol=1e-3)
    with pytest.raises(ConfigError, match="unknown --layout"):
        adopt_onnx(source, tmp_path / "x.onnx", layout="yolov9")
