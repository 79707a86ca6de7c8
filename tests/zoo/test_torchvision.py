"""torchvision detectors and segmenters: plain state dict -> ONNX (TorchScript exporter) -> parity -> edgecv.load.

Needs torchvision, which does not import beside the main venv's torch: run with the
separate venv, ``.venv-tv/bin/python -m pytest -m torchvision tests/zoo/test_torchvision.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torchvision
torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")

import edgecv  # noqa: E402
from edgecv.errors import ExportError  # noqa: E402
from edgecv.export import ExportConfig, export_model  # noqa: E402
from edgecv.results import Detections, Segmentation  # noqa: E402
from edgecv.zoo.tv import DETECTION, SEGMENTATION  # noqa: E402

NAMES = ("cat", "dog", "bird")
# small inputs keep the suite fast; the R-CNN family / RetinaNet / FCOS resize inside the graph anyway
SIZES = {"ssdlite320_mobilenet_v3_large": 320, "fasterrcnn_mobilenet_v3_large_320_fpn": 320}


def _plain_torchvision_state(name: str, path: Path) -> Path:
    """A state dict saved from the plain torchvision model, as a user would: background counted in num_classes."""
    torch.manual_seed(0)
    if name in DETECTION:
        model = getattr(tvm.detection, name)(weights=None, weights_backbone=None, num_classes=len(NAMES) + 1)
    else:
        model = getattr(tvm.segmentation, name)(weights=None, weights_backbone=None, num_classes=len(NAMES), aux_loss=None)
    if name in DETECTION:  # untrained heads give exactly tied scores; spread them so NMS has a unique answer
        with torch.no_grad():  # only the heads: noise on a whole ResNet-50 blows its activations up
            for key, p in model.named_parameters():
                if key.startswith(("head.", "roi_heads.", "rpn.")):
                    p.add_(torch.randn_like(p) * 0.05)
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("name", DETECTION + SEGMENTATION)
def test_export_and_run(name: str, tmp_path: Path) -> None:
    ckpt = _plain_torchvision_state(name, tmp_path / f"{name}.pth")
    size = SIZES.get(name, 224)
    out = tmp_path / f"{name}.onnx"
    # random weights: most scores tie, so NMS order (and the task-level agreement) is a coin toss; the
    # element-wise check (max abs diff) and the pairing's own lost-detection check still apply
    cfg = ExportConfig(arch=name, num_classes=len(NAMES), names=NAMES, input_size=(size, size), tolerance=0.0)
    report = export_model(ckpt, out, cfg)

    assert report.exporter == "torchscript"
    assert report.parity is not None and report.parity.max_abs_diff < 1e-2
    meta = report.meta
    assert meta.names == NAMES and meta.input_size == (size, size) and meta.arch == name
    frame = np.random.default_rng(0).integers(0, 255, (180, 240, 3), dtype=np.uint8)
    with edgecv.load(out, conf=0.0) as model:
        result = model(frame)
    if name in DETECTION:
        assert meta.output_format == "tv_detect" and not meta.dynamic and meta.mean == (0.0, 0.0, 0.0)
        assert isinstance(result, Detections)
        assert result.xyxy.dtype == np.float32 and result.scores.dtype == np.float32 and result.class_ids.dtype == np.int32
        assert ((result.class_ids >= 0) & (result.class_ids < len(NAMES))).all()
        assert (result.xyxy[:, [0, 2]] <= 240).all() and (result.xyxy[:, [1, 3]] <= 180).all() and (result.xyxy >= 0).all()
        assert (np.diff(result.scores) <= 0).all()
        if name == "maskrcnn_resnet50_fpn":  # instance masks at the original size
            assert result.masks is not None and result.masks.shape == (len(result), 180, 240)
            assert len(result) >= 1 and result.masks.any()
        else:
            assert result.masks is None
    else:
        assert meta.output_format == "seg_logits" and meta.mean == (0.485, 0.456, 0.406)
        assert isinstance(result, Segmentation)
        assert result.class_map.shape == (180, 240)
        assert result.class_map.min() >= 0 and result.class_map.max() < len(NAMES)


def test_class_filter_and_max_det(tmp_path: Path) -> None:
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    out = tmp_path / "m.onnx"
    export_model(_plain_torchvision_state(name, tmp_path / "m.pth"), out, ExportConfig(arch=name, names=NAMES, parity_count=1, tolerance=0.0))
    frame = np.random.default_rng(1).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    with edgecv.load(out, conf=0.0, classes=[1], max_det=5) as model:
        result = model(frame)
    assert len(result) <= 5 and (result.class_ids == 1).all()


def test_mismatched_weights_are_a_short_error(tmp_path: Path) -> None:
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    ckpt = _plain_torchvision_state(name, tmp_path / "m.pth")
    with pytest.raises(ExportError, match="do not fit the architecture"):
        export_model(ckpt, tmp_path / "m.onnx", ExportConfig(arch=name, num_classes=5))
