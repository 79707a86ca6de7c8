"""Accuracy metrics: COCO box mAP against pycocotools, segmentation metrics by hand, the eval driver."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.bench.accuracy import (
    IOU_THRESHOLDS,
    DetectionEvaluator,
    SegmentationEvaluator,
    box_iou_coco,
    evaluate,
)
from edgecv.data.datasets import open_dataset
from edgecv.errors import ConfigError, DatasetError
from edgecv.results import Detections, Segmentation

# --------------------------------------------------------------------------- synthetic data


def _random_case(seed: int, num_images: int = 12, num_classes: int = 5) -> dict:
    """Random GT and predictions exercising COCOeval's corner cases.

    Class ``num_classes - 1`` never has GT (AP -1); some images have no GT; some GTs are
    crowd; scores are quantised so ties occur within and across images; one image has
    more than 100 detections of one class.
    """
    rng = np.random.default_rng(seed)
    images = []
    for image_id in range(1, num_images + 1):
        num_gt = 0 if image_id % 5 == 0 else int(rng.integers(1, 9))
        xy = rng.uniform(0, 200, (num_gt, 2))
        wh = rng.uniform(4, 80, (num_gt, 2))
        gt = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        gt_cls = rng.integers(0, num_classes - 1, num_gt).astype(np.int32)
        if num_gt >= 2 and image_id % 3 == 0:  # an exact duplicate GT: equal IoUs, COCOeval's tie rule
            gt = np.concatenate([gt, gt[:1]])
            gt_cls = np.concatenate([gt_cls, gt_cls[:1]])
            num_gt += 1
        crowd = rng.random(num_gt) < 0.2
        # predictions: jittered copies of GT (some duplicated) + random false positives
        parts, cls_parts = [], []
        for _ in range(int(rng.integers(1, 3))):
            jitter = gt + rng.normal(0, rng.uniform(0.5, 12), gt.shape).astype(np.float32)
            keep = rng.random(num_gt) < 0.85
            parts.append(jitter[keep])
            cls_parts.append(
                np.where(rng.random(keep.sum()) < 0.9, gt_cls[keep], rng.integers(0, num_classes, keep.sum()))
            )
        # small boxes inside crowd regions: matched to the crowd box (ignored), possibly several times
        for box, cls in zip(gt[crowd], gt_cls[crowd], strict=True):
            w, h = box[2:] - box[:2]
            inner = box + np.array([0.1 * w, 0.1 * h, -0.3 * w, -0.3 * h], np.float32)
            parts.append(np.stack([inner, inner + 1]).astype(np.float32))
            cls_parts.append(np.full(2, cls))
        num_fp = int(rng.integers(0, 15)) + (130 if image_id == 3 else 0)
        fxy = rng.uniform(0, 220, (num_fp, 2))
        fwh = rng.uniform(2, 90, (num_fp, 2))
        parts.append(np.concatenate([fxy, fxy + fwh], 1).astype(np.float32))
        cls_parts.append(np.full(num_fp, 1) if image_id == 3 else rng.integers(0, num_classes, num_fp))
        boxes = np.concatenate(parts).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        classes = np.concatenate(cls_parts).astype(np.int32)
        scores = (np.round(rng.uniform(0, 1, len(boxes)) * 20) / 20).astype(np.float32)  # many ties
        images.append(
            {"id": image_id, "gt": gt, "gt_cls": gt_cls, "crowd": crowd, "dt": Detections(boxes, scores, classes)}
        )
    return {"images": images, "num_classes": num_classes}


def _xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)  # float32 -> float64, as the evaluator does
    return [x1, y1, x2 - x1, y2 - y1]


def _pycocotools_stats(case: dict, max_dets: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval bbox: (stats, per-class AP@0.5:0.95 and AP@0.5)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    k = case["num_classes"]
    gt_json = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(k)]}
    results = []
    for im in case["images"]:
        gt_json["images"].append({"id": im["id"], "width": 300, "height": 300, "file_name": f"{im['id']}.jpg"})
        for box, cls, crowd in zip(im["gt"], im["gt_cls"], im["crowd"], strict=True):
            bb = _xywh(box)
            gt_json["annotations"].append(
                {
                    "id": len(gt_json["annotations"]) + 1,
                    "image_id": im["id"],
                    "category_id": int(cls) + 1,
                    "bbox": bb,
                    "area": bb[2] * bb[3],
                    "iscrowd": int(crowd),
                }
            )
        dt = im["dt"]
        for box, score, cls in zip(dt.xyxy, dt.scores, dt.class_ids, strict=True):
            results.append(
                {"image_id": im["id"], "category_id": int(cls) + 1, "bbox": _xywh(box), "score": float(score)}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.params.maxDets = [1, min(10, max_dets), max_dets]  # evaluate() sorts them; evaluateImg() cuts at the last
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K), area all, maxDets[-1]
    stats = ev.stats
    if max_dets != 100:  # summarize() looks maxDets up by value: read the arrays directly instead
        rec = ev.eval["recall"][:, :, 0, -1]
        stats = ev.stats.copy()
        stats[0], stats[1], stats[8] = (float(np.mean(a[a > -1])) for a in (prec, prec[0], rec))

    def per_class(p: np.ndarray) -> np.ndarray:
        return np.array([np.mean(p[..., c][p[..., c] > -1]) if (p[..., c] > -1).any() else -1 for c in range(k)])

    return stats, np.stack([per_class(prec), per_class(prec[0])])


def _ours(case: dict, max_dets: int = 100):
    ev = DetectionEvaluator(case["num_classes"], max_dets=max_dets)
    for im in reversed(case["images"]):  # insertion order must not matter
        ev.add(im["id"], im["gt"], im["gt_cls"], im["dt"], gt_iscrowd=im["crowd"])
    return ev.compute()


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_map_matches_pycocotools(seed: int) -> None:
    pytest.importorskip("pycocotools")
    case = _random_case(seed)
    stats, per_class = _pycocotools_stats(case)
    m = _ours(case)
    assert m.map == pytest.approx(stats[0], abs=1e-4)
    assert m.map50 == pytest.approx(stats[1], abs=1e-4)
    assert m.map75 == pytest.approx(stats[2], abs=1e-4)
    assert m.mar100 == pytest.approx(stats[8], abs=1e-4)
    np.testing.assert_allclose(m.per_class_ap, per_class[0], atol=1e-4)
    np.testing.assert_allclose(m.per_class_ap50, per_class[1], atol=1e-4)
    assert m.per_class_ap[-1] == -1  # the class without GT
    assert 0 < m.map < 1


@pytest.mark.parametrize("max_dets", [1, 5, 20, 300, 1000])
@pytest.mark.parametrize("seed", [0, 3])
def test_map_matches_pycocotools_at_other_max_dets(seed: int, max_dets: int) -> None:
    pytest.importorskip("pycocotools")
    case = _random_case(seed)
    stats, per_class = _pycocotools_stats(case, max_dets)
    m = _ours(case, max_dets)
    assert m.max_dets == max_dets and m.to_dict()["max_det"] == max_dets
    assert m.map == pytest.approx(stats[0], abs=1e-4)
    assert m.map50 == pytest.approx(stats[1], abs=1e-4)
    assert m.mar100 == pytest.approx(stats[8], abs=1e-4)
    np.testing.assert_allclose(m.per_class_ap, per_class[0], atol=1e-4)


def test_max_dets_changes_the_score_of_a_dense_image() -> None:
    """Image 3 has > 100 detections of one class: the cut decides which are scored."""
    case = _random_case(0)
    assert _ours(case, 5).num_detections < _ours(case, 100).num_detections < _ours(case, 1000).num_detections


def test_iou_thresholds_match_cocoeval() -> None:
    assert IOU_THRESHOLDS[0] == 0.5 and IOU_THRESHOLDS[5] == 0.75 and len(IOU_THRESHOLDS) == 10


def test_box_iou_coco() -> None:
    dt = np.array([[0, 0, 10, 10], [5, 5, 10, 10], [20, 20, 1, 1]], np.float64)
    gt = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], np.float64)
    iou = box_iou_coco(dt, gt, np.array([False, True]))
    np.testing.assert_allclose(iou, [[1, 1], [25 / 175, 1], [0, 0]])  # crowd: intersection / detection area


def test_perfect_and_empty_predictions() -> None:
    case = _random_case(7)
    perfect, empty = DetectionEvaluator(case["num_classes"]), DetectionEvaluator(case["num_classes"])
    for im in case["images"]:
        n = len(im["gt"])
        perfect.add(im["id"], im["gt"], im["gt_cls"], (im["gt"], np.linspace(1, 0.5, n), im["gt_cls"]), im["crowd"])
        empty.add(im["id"], im["gt"], im["gt_cls"], Detections.empty(), im["crowd"])
    p, e = perfect.compute(), empty.compute()
    assert p.map == p.map50 == p.map75 == p.mar100 == 1.0
    assert p.per_class_ap[:-1] == (1.0,) * (case["num_classes"] - 1) and p.per_class_ap[-1] == -1
    assert e.map == e.map50 == e.mar100 == 0.0 and e.num_detections == 0
    d = p.to_dict()
    assert d["map"] == 1.0 and d["per_class_ap"]["4"] is None and d["num_images"] == len(case["images"])


def test_detection_evaluator_input_checks() -> None:
    ev = DetectionEvaluator(2)
    box = np.array([[0, 0, 1, 1]], np.float32)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 2\), got \[5\]"):
        ev.add(0, box, [5], Detections.empty())
    ev.add(1, box, [0], Detections.empty())
    with pytest.raises(ValueError, match="already added"):
        ev.add(1, box, [0], Detections.empty())
    assert DetectionEvaluator(3).compute().map == -1  # no ground truth at all


# --------------------------------------------------------------------------- segmentation


def test_segmentation_metrics_by_hand() -> None:
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 2, 0], [2, 2, 1, 1]])
    ev = SegmentationEvaluator(4, names=("bg", "a", "b", "never"))
    ev.add(pred, gt)
    m = ev.compute()
    # bg: tp 3, gt 4, pred 4 -> 3/5; a: tp 4, gt 4, pred 5 -> 4/5; b: tp 3, gt 4, pred 3 -> 3/4; class 3 absent
    np.testing.assert_allclose(m.per_class_iou[:3], [3 / 5, 4 / 5, 3 / 4])
    assert math.isnan(m.per_class_iou[3])
    assert m.miou == pytest.approx((3 / 5 + 4 / 5 + 3 / 4) / 3)
    assert m.pixel_accuracy == pytest.approx(10 / 12) and m.num_pixels == 12
    np.testing.assert_allclose(m.per_class_dice[:3], [6 / 8, 8 / 9, 6 / 7])
    assert m.mean_accuracy == pytest.approx((3 / 4 + 4 / 4 + 3 / 4) / 3)
    d = m.to_dict()
    assert d["per_class_iou"]["never"] is None and d["miou"] == pytest.approx(m.miou, abs=1e-6)
    assert m.confusion.sum() == 12 and m.confusion[0, 1] == 1

    ev.add(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int32))  # accumulates
    assert ev.compute().num_images == 2 and ev.compute().per_class_iou[0] == pytest.approx(7 / 9)


def test_segmentation_checks() -> None:
    ev = SegmentationEvaluator(3)
    with pytest.raises(ValueError, match="shapes differ"):
        ev.add(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=r"values \[7\] outside"):
        ev.add(np.zeros((2, 2), int), np.full((2, 2), 7))
    with pytest.raises(ValueError, match="predicted class map"):
        ev.add(np.full((2, 2), 3), np.zeros((2, 2), int))
    assert math.isnan(ev.compute().miou)


# --------------------------------------------------------------------------- driver


def _write_shapes(root: Path) -> None:
    """A 3-image COCO dataset with semantic masks, categories 1 'square', 2 'bar'."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images, anns = [], []
    for i in range(3):
        img = np.zeros((48, 64, 3), np.uint8)
        mask = np.zeros((48, 64), np.uint8)
        mask[5 : 15 + i, 5:20] = 1
        mask[30:40, 10 + i : 60] = 2
        cv2.imwrite(str(root / "images" / f"{i:06d}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{i:06d}.png"), mask)
        images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": 64, "height": 48})
        for cat in (1, 2):
            ys, xs = np.nonzero(mask == cat)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    coco = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "bar"}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))


class _Oracle:
    """A fake model that answers with the ground truth of the image it is shown."""

    def __init__(self, dataset, task: str, names: tuple[str, ...]) -> None:
        self.task, self.names, self.calls = task, names, 0
        self._samples = list(dataset)

    def __call__(self, image: np.ndarray):
        sample = self._samples[self.calls]
        self.calls += 1
        if self.task == "segment":
            return Segmentation(sample.load_semantic_mask(), self.names)
        n = len(sample)
        return Detections(sample.boxes, np.linspace(0.9, 0.5, n, dtype=np.float32), sample.class_ids, self.names)


def test_evaluate_detection_and_segmentation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_shapes(tmp_path)
    ds = open_dataset(tmp_path)
    seen = []
    det = evaluate(_Oracle(ds, "detect", ("square", "bar")), ds, progress=lambda d, t: seen.append((d, t)))
    assert det.map == 1.0 and det.num_images == 3 and det.num_gt == 6
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seg = evaluate(_Oracle(ds, "segment", ("background", "square", "bar")), ds, max_images=2)
    assert seg.miou == 1.0 and seg.num_images == 2 and seg.pixel_accuracy == 1.0

    with caplog.at_level("WARNING"):  # same count, other names: allowed with a warning
        assert evaluate(_Oracle(ds, "detect", ("a", "b")), ds).map == 1.0
    assert "class names differ" in caplog.text
    with pytest.raises(ConfigError, match="model has 3 classes"):
        evaluate(_Oracle(ds, "detect", ("square", "bar", "x")), ds)
    with pytest.raises(ConfigError, match=r"background \+ categories"):
        evaluate(_Oracle(ds, "segment", ("square", "bar")), ds)
    with pytest.raises(ConfigError, match="task"):
        evaluate(_Oracle(ds, "classify", ()), ds)

    for mask in (tmp_path / "masks").iterdir():
        mask.unlink()
    with pytest.raises(DatasetError, match="no semantic mask") as info:
        evaluate(_Oracle(open_dataset(tmp_path), "segment", ("background", "square", "bar")), open_dataset(tmp_path))
    assert "masks/" in str(info.value)
    images_only = open_dataset(tmp_path / "images")
    with pytest.raises(DatasetError, match="no box labels"):
        evaluate(_Oracle(images_only, "detect", ()), images_only)
