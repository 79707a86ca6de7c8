"""decode_yolov8 on crafted raw outputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.vision.decode import decode_yolov8
from edgecv.vision.nms import nms

NC = 3
A = 64


def raw(entries: list[tuple[int, tuple[float, float, float, float], dict[int, float]]]) -> np.ndarray:
    """(1, 4 + NC, A) output; each entry: anchor, (cx, cy, w, h), {class: score}. Other scores are 0.01."""
    out = np.zeros((1, 4 + NC, A), np.float32)
    out[0, :4] = np.array([320, 320, 10, 10], np.float32)[:, None]
    out[0, 4:] = 0.01
    for anchor, box, scores in entries:
        out[0, :4, anchor] = box
        for c, s in scores.items():
            out[0, 4 + c, anchor] = s
    return out


SCENE = raw(
    [
        (5, (100, 100, 40, 20), {1: 0.9}),  # -> [80, 90, 120, 110], class 1
        (9, (101, 100, 40, 20), {1: 0.7}),  # same object, same class: suppressed
        (12, (100, 100, 40, 20), {2: 0.8}),  # same place, other class: kept unless agnostic
        (20, (300, 200, 50, 50), {0: 0.6, 2: 0.5}),  # best class 0
        (30, (500, 500, 10, 10), {1: 0.2}),  # below conf
        (31, (400, 100, 10, 10), {1: 0.25}),  # exactly conf: dropped (strict >)
    ]
)


def test_known_boxes_classes_and_order() -> None:
    xyxy, scores, cls = decode_yolov8(SCENE, conf=0.25, iou=0.45)
    assert xyxy.dtype == np.float32 and scores.dtype == np.float32 and cls.dtype == np.int32
    np.testing.assert_array_equal(xyxy, [[80, 90, 120, 110], [80, 90, 120, 110], [275, 175, 325, 225]])
    np.testing.assert_array_equal(scores, np.array([0.9, 0.8, 0.6], np.float32))
    np.testing.assert_array_equal(cls, [1, 2, 0])


def test_two_dimensional_input_and_float16_give_the_same_result() -> None:
    ref = decode_yolov8(SCENE, conf=0.25, iou=0.45)
    for variant in (SCENE[0], SCENE.astype(np.float16)):
        got = decode_yolov8(variant, conf=0.25, iou=0.45)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3)


def test_conf_filter() -> None:
    _, scores, _ = decode_yolov8(SCENE, conf=0.1, iou=0.45)
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.6, 0.25, 0.2])
    _, scores, _ = decode_yolov8(SCENE, conf=0.85, iou=0.45)
    assert scores.tolist() == pytest.approx([0.9])
    xyxy, scores, cls = decode_yolov8(SCENE, conf=0.95, iou=0.45)
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and cls.shape == (0,)


def test_class_filter_applies_to_the_best_class() -> None:
    _, _, cls = decode_yolov8(SCENE, conf=0.25, iou=0.45, classes=[2])
    # anchor 20 scores class 2 at 0.5 but its best class is 0, so it is dropped (as in Ultralytics)
    assert cls.tolist() == [2]
    _, _, cls = decode_yolov8(SCENE, conf=0.25, iou=0.45, classes=[0, 1])
    assert cls.tolist() == [1, 0]
    assert len(decode_yolov8(SCENE, conf=0.25, iou=0.45, classes=[])[0]) == 0


def test_agnostic_max_det_and_topk() -> None:
    _, _, cls = decode_yolov8(SCENE, conf=0.25, iou=0.45, agnostic=True)
    assert cls.tolist() == [1, 0]
    _, scores, _ = decode_yolov8(SCENE, conf=0.25, iou=0.45, max_det=2)
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    _, scores, _ = decode_yolov8(SCENE, conf=0.25, iou=0.45, pre_nms_topk=1)
    assert scores.tolist() == pytest.approx([0.9])


def test_matches_a_naive_decode_on_random_outputs() -> None:
    rng = np.random.default_rng(0)
    nc, anchors = 5, 2000
    out = np.empty((1, 4 + nc, anchors), np.float32)
    out[0, :2] = rng.uniform(0, 640, (2, anchors))
    out[0, 2:4] = rng.uniform(4, 120, (2, anchors))
    out[0, 4:] = rng.random((nc, anchors)) ** 6  # mostly low scores, like a real head
    xyxy, scores, cls = decode_yolov8(out, conf=0.3, iou=0.5, max_det=100)

    p = out[0].T  # naive: every anchor, full argmax, then filter
    best, best_cls = p[:, 4:].max(1), p[:, 4:].argmax(1)
    m = best > np.float32(0.3)
    boxes = np.concatenate([p[m, :2] - p[m, 2:4] / 2, p[m, :2] + p[m, 2:4] / 2], 1)
    keep = nms(boxes, best[m], best_cls[m], 0.5, 100)
    assert 0 < len(keep) <= 100
    np.testing.assert_array_equal(xyxy, boxes[keep])
    np.testing.assert_array_equal(scores, best[m][keep])
    np.testing.assert_array_equal(cls, best_cls[m][keep])


@pytest.mark.parametrize("shape", [(3, 10), (1, 4, 10), (1, 2, 3, 4), (7,)])
def test_bad_layouts_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="YOLOv8 output"):
        decode_yolov8(np.zeros(shape, np.float32), conf=0.25, iou=0.45)
