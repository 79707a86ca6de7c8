"""Ultralytics YOLOv8/11-seg adoption: a constant two-output ONNX built here, with masks known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgecv
from edgecv.artifact import infer_meta
from edgecv.errors import ArtifactError, ConfigError
from edgecv.vision.decode import decode_yolov8
from edgecv.vision.letterbox import letterbox
from edgecv.vision.masks import decode_yolov8_seg

onnx = pytest.importorskip("onnx")
from tiny_models import constant_outputs  # noqa: E402

SIZE = 64  # model input; protos are SIZE / 4
NC = 2
A = 20
IMAGE = np.zeros((96, 128, 3), np.uint8)  # -> scale 0.5, content 48 x 64, 8 px padding top and bottom


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """output0 (1, 4 + NC + 32, A) and protos (1, 32, 16, 16) with known boxes and masks.

    Proto 0 is +10 on proto rows 4..11, cols 2..9 (input y 16..48, x 8..40; original
    y 16..80, x 16..80) and -10 elsewhere; proto 1 is +5 everywhere; proto 2 is -5 everywhere.
    """
    out = np.zeros((1, 4 + NC + 32, A), np.float32)
    out[0, :4] = np.array([32, 32, 4, 4], np.float32)[:, None]
    out[0, 4 : 4 + NC] = 0.01

    def put(anchor: int, box: tuple[float, float, float, float], cls: int, score: float, proto: int) -> None:
        out[0, :4, anchor] = box
        out[0, 4 + cls, anchor] = score
        out[0, 4 + NC + proto, anchor] = 1.0

    put(3, (32, 32, 40, 24), 0, 0.9, proto=0)  # input x 12..52, y 20..44 -> original x 24..104, y 24..72
    put(7, (58, 50, 8, 8), 1, 0.8, proto=1)  # input x 54..62, y 46..54 -> original x 108..124, y 76..92
    put(10, (33, 32, 40, 24), 0, 0.6, proto=2)  # same object as anchor 3: suppressed
    protos = np.full((1, 32, SIZE // 4, SIZE // 4), 0.0, np.float32)
    protos[0, 0] = -10
    protos[0, 0, 4:12, 2:10] = 10
    protos[0, 1] = 5
    protos[0, 2] = -5
    return out, protos


def _expected_masks() -> np.ndarray:
    masks = np.zeros((2, 96, 128), bool)
    masks[0, 24:72, 24:80] = True  # proto-0 rectangle (x < 80) inside the box (y 24..72)
    masks[1, 76:92, 108:124] = True  # the whole box
    return masks


def _constant_seg_onnx(
    path: Path, out: np.ndarray, protos: np.ndarray, *, protos_first: bool = False, props: dict[str, str] | None = None
) -> Path:
    """A graph that ignores its input and returns constant outputs: a foreign YOLOv8-seg ONNX."""
    outputs = [("output0", out), ("output1", protos)]
    return constant_outputs(path, outputs[::-1] if protos_first else outputs, SIZE, props)


@pytest.mark.parametrize("protos_first", [False, True], ids=["output0-first", "protos-first"])
def test_infer_meta_recognises_yolov8_seg(protos_first: bool) -> None:
    shapes = [[1, 4 + 80 + 32, 8400], [1, 32, 160, 160]]
    if protos_first:
        shapes.reverse()
    meta = infer_meta([1, 3, 640, 640], shapes, foreign_props={"names": str({i: f"c{i}" for i in range(80)})})
    assert (meta.task, meta.output_format, meta.num_classes) == ("detect", "yolov8_seg", 80)
    assert meta.input_size == (640, 640)
    assert meta.names[:2] == ("c0", "c1") and not meta.dynamic


def test_infer_meta_yolov8_seg_dynamic_names_and_errors() -> None:
    meta = infer_meta([None, 3, None, None], [[None, 4 + 2 + 32, None], [None, 32, None, None]], names=["a", "b"])
    assert (meta.output_format, meta.names, meta.dynamic) == ("yolov8_seg", ("a", "b"), True)
    with pytest.raises(ConfigError, match="task segment"):
        infer_meta([1, 3, 64, 64], [[1, 38, 20], [1, 32, 16, 16]], task="segment")
    with pytest.raises(ConfigError, match="3 class names"):
        infer_meta([1, 3, 64, 64], [[1, 38, 20], [1, 32, 16, 16]], names=["a", "b", "c"])
    with pytest.raises(ArtifactError):  # prototypes must have 32 channels
        infer_meta([1, 3, 64, 64], [[1, 38, 20], [1, 16, 16, 16]])


def test_decode_yolov8_seg_known_boxes_and_masks() -> None:
    out, protos = _scene()
    _, transform = letterbox(IMAGE, (SIZE, SIZE))
    xyxy, scores, cls, masks = decode_yolov8_seg(out, protos, 0.25, 0.45, transform)
    np.testing.assert_allclose(xyxy, [[24, 24, 104, 72], [108, 76, 124, 92]])
    np.testing.assert_allclose(scores, [0.9, 0.8], rtol=1e-6)
    assert cls.tolist() == [0, 1] and xyxy.dtype == np.float32 and cls.dtype == np.int32
    assert masks.dtype == np.bool_ and masks.shape == (2, 96, 128)
    np.testing.assert_array_equal(masks, _expected_masks())
    # class filter and max_det go through the same selection as decode_yolov8
    _, _, cls1, masks1 = decode_yolov8_seg(out, protos, 0.25, 0.45, transform, classes=[1])
    assert cls1.tolist() == [1] and np.array_equal(masks1[0], _expected_masks()[1])
    empty = decode_yolov8_seg(out, protos, 0.95, 0.45, transform)
    assert empty[0].shape == (0, 4) and empty[3].shape == (0, 96, 128)


@pytest.mark.parametrize("agnostic", [False, True])
def test_decode_yolov8_seg_selects_what_decode_yolov8_does(agnostic: bool) -> None:
    rng = np.random.default_rng(0)
    n_anchors, nc = 500, 3
    out = np.empty((1, 4 + nc + 32, n_anchors), np.float32)
    out[0, :2] = rng.uniform(0, SIZE, (2, n_anchors))
    out[0, 2:4] = rng.uniform(2, 20, (2, n_anchors))
    out[0, 4 : 4 + nc] = rng.uniform(0, 1, (nc, n_anchors))
    out[0, 4 + nc :] = rng.normal(size=(32, n_anchors))
    protos = rng.normal(size=(1, 32, SIZE // 4, SIZE // 4)).astype(np.float32)
    _, transform = letterbox(IMAGE, (SIZE, SIZE))
    xyxy, scores, cls, masks = decode_yolov8_seg(out, protos, 0.3, 0.5, transform, max_det=50, agnostic=agnostic)
    ref = decode_yolov8(out[:, : 4 + nc], 0.3, 0.5, max_det=50, agnostic=agnostic)
    unclipped = ref[0].copy()
    unclipped[:, 0::2] /= transform.scale
    assert (unclipped < 0).any()  # some boxes cross the image edge, so clipping is exercised
    ref_src = transform.boxes_to_src(ref[0])
    assert ref_src.min() >= 0 and (ref_src[:, 0::2] <= 128).all() and (ref_src[:, 1::2] <= 96).all()
    np.testing.assert_array_equal(xyxy, ref_src)
    np.testing.assert_array_equal(scores, ref[1])
    np.testing.assert_array_equal(cls, ref[2])
    assert masks.shape == (len(xyxy), 96, 128)
    for box, mask in zip(xyxy, masks):  # nothing outside its box
        x1, y1, x2, y2 = np.ceil(box).astype(int)
        inside = np.zeros_like(mask)
        inside[y1:y2, x1:x2] = True
        assert not (mask & ~inside).any()


@pytest.mark.parametrize("protos_first", [False, True], ids=["output0-first", "protos-first"])
def test_load_and_run_foreign_yolov8_seg(tmp_path: Path, protos_first: bool) -> None:
    out, protos = _scene()
    path = _constant_seg_onnx(tmp_path / "seg.onnx", out, protos, protos_first=protos_first)
    model = edgecv.load(path, names=["blob", "dot"])
    assert (model.task, model.meta.output_format, model.names) == ("detect", "yolov8_seg", ("blob", "dot"))
    dets = model(IMAGE)
    np.testing.assert_allclose(dets.xyxy, [[24, 24, 104, 72], [108, 76, 124, 92]])
    assert dets.class_ids.tolist() == [0, 1]
    assert dets.masks is not None and dets.masks.shape == (2, *IMAGE.shape[:2])
    np.testing.assert_array_equal(dets.masks, _expected_masks())
    assert dets[1:].masks is not None and np.array_equal(dets[1:].masks[0], _expected_masks()[1])


def test_load_yolov8_seg_names_from_ultralytics_props(tmp_path: Path) -> None:
    out, protos = _scene()
    props = {"names": "{0: 'person', 1: 'car'}", "stride": "32"}
    path = _constant_seg_onnx(tmp_path / "seg.onnx", out, protos, props=props)
    model = edgecv.load(path, conf=0.85)
    assert model.names == ("person", "car")
    dets = model(IMAGE)
    assert len(dets) == 1 and dets.masks is not None and np.array_equal(dets.masks[0], _expected_masks()[0])


@pytest.mark.parametrize("protos_first", [False, True], ids=["output0-first", "protos-first"])
def test_in_graph_nms_keeps_mask_coefficients(tmp_path: Path, protos_first: bool) -> None:
    """`edgecv convert --nms onnx` on a YOLOv8-seg model: same boxes and masks as the host decode."""
    from edgecv.export.convert import NmsOptions, convert_onnx
    from edgecv.export.nms import add_nms

    out, protos = _scene()
    path = _constant_seg_onnx(tmp_path / "seg.onnx", out, protos, protos_first=protos_first, props={"names": "{0: 'blob', 1: 'dot'}"})
    nms_path = tmp_path / "seg.nms.onnx"
    meta = convert_onnx(path, nms_path, nms=NmsOptions("onnx", iou=0.45, conf=0.25, max_det=10))
    assert meta.output_format == "nms" and meta.extra["nms"]["masks"] is True
    with edgecv.load(nms_path) as model:
        assert [o.name for o in model.engine.outputs] == ["num_dets", "boxes", "scores", "classes", "mask_coefs", "protos"]
        dets = model(IMAGE)
    np.testing.assert_allclose(dets.xyxy, [[24, 24, 104, 72], [108, 76, 124, 92]], atol=1e-4)
    assert dets.class_names == ["blob", "dot"]
    np.testing.assert_array_equal(dets.masks, _expected_masks())
    with pytest.raises(ConfigError, match="efficient cannot keep mask coefficients"):
        add_nms(onnx.load(str(path)), edgecv.load(path).meta, kind="efficient")
