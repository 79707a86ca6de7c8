from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv.results import Detections, FrameResult, Segmentation, StageTimings


def make_detections(n: int = 3, seed: int = 0, names: tuple[str, ...] = ("a", "b")) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
    wh = rng.uniform(5, 50, (n, 2)).astype(np.float32)
    return Detections(
        np.concatenate([xy, xy + wh], 1),
        rng.uniform(0, 1, n).astype(np.float32),
        rng.integers(0, len(names), n).astype(np.int32),
        names,
    )


def test_validation_names_the_field_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"xyxy must be \(N, 4\) float32, got \(3, 5\) float64"):
        Detections(np.zeros((3, 5)), np.zeros(3, np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="scores must be"):
        Detections(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="masks must be"):
        Detections(np.zeros((1, 4), np.float32), np.zeros(1, np.float32), np.zeros(1, np.int32), masks=np.zeros((2, 4, 4), bool))


def test_indexing_always_returns_detections() -> None:
    d = make_detections(5)
    assert isinstance(d[0], Detections) and len(d[0]) == 1
    assert len(d[1:3]) == 2
    keep = d.scores > 0.5
    assert np.array_equal(d[keep].scores, d.scores[keep])
    assert np.array_equal(d[[4, 0]].xyxy, d.xyxy[[4, 0]])
    assert len(Detections.empty()) == 0


def test_to_dict_is_json_and_names_classes() -> None:
    d = make_detections(2, names=("cat", "dog"))
    payload = json.loads(json.dumps(d.to_dict()))
    assert [x["class_name"] for x in payload["detections"]] == d.class_names
    assert payload["detections"][0]["box"] == [round(float(v), 2) for v in d.xyxy[0]]


def test_with_nms_removes_duplicates_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    d = Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1], np.int32))
    kept = d.with_nms(0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])
    assert len(d.with_nms(0.5, class_agnostic=True)) == 1


def test_segmentation_and_frame_result() -> None:
    cmap = np.zeros((4, 6), np.int32)
    cmap[:, 3:] = 2
    seg = Segmentation(cmap, ("bg", "x", "y"))
    assert seg.area_fractions() == {"bg": 0.5, "y": 0.5}
    fr = FrameResult(3, 1.5, seg, StageTimings(infer=2.0))
    d = fr.to_dict()
    assert d["frame"] == 3 and d["timings_ms"]["infer"] == 2.0 and d["areas"]["y"] == 0.5
    with pytest.raises(ValueError, match="class_map"):
        Segmentation(cmap.astype(np.uint8))
