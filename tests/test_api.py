"""The Python API on the shipped models: accuracy on fresh scenes, threads, segmentation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

import edgecv
from edgecv.data.synthetic import make_scene
from edgecv.results import Detections, Segmentation


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_detector_finds_the_shapes_in_original_coordinates(det_onnx: Path) -> None:
    model = edgecv.load(det_onnx, conf=0.3)
    rng = np.random.default_rng(99)
    found = total = 0
    for k in range(20):
        size = [(480, 640), (300, 300), (640, 360)][k % 3]  # letterboxing both ways
        image, instances, _ = make_scene(rng, *size)
        dets = model(image)
        assert isinstance(dets, Detections)
        gt = np.array([i.box for i in instances], np.float32)
        ious = iou(gt, dets.xyxy)
        for g, inst in enumerate(instances):
            total += 1
            j = int(ious[g].argmax()) if len(dets) else -1
            found += j >= 0 and ious[g, j] > 0.7 and dets.class_ids[j] == inst.class_id
    assert found >= 0.85 * total


def test_one_model_serves_several_threads(det_onnx: Path) -> None:
    model = edgecv.load(det_onnx, conf=0.3)
    images = [make_scene(np.random.default_rng(s))[0] for s in range(4)]
    expected = [model(im) for im in images]
    results: dict[int, Detections] = {}

    def work(i: int) -> None:
        results[i] = model(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_allclose(results[i].xyxy, expected[i].xyxy, atol=1e-4)


def test_segmenter_labels_pixels(seg_onnx: Path) -> None:
    model = edgecv.load(seg_onnx)
    assert model.task == "segment" and model.names[0] == "background"
    image, _, semantic = make_scene(np.random.default_rng(7), 240, 320)
    seg = model(image)
    assert isinstance(seg, Segmentation) and seg.shape == (240, 320)
    assert (seg.class_map == semantic).mean() > 0.95
