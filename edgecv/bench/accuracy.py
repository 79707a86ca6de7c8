"""Accuracy metrics: COCO box mAP, semantic-segmentation mIoU, and the ``eval`` driver.

Pure numpy (no pycocotools on the runtime path). :class:`DetectionEvaluator`
reproduces pycocotools' ``COCOeval`` (``iouType="bbox"``, area range "all") step
by step, so its numbers agree with it to floating-point rounding:

- IoU thresholds 0.50:0.05:0.95, 101 recall points, precision envelope.
- Per image and class, detections are sorted by score (stable, so ties keep their
  input order) and only the top ``maxDets`` (100 unless ``max_dets`` says otherwise) are kept
  (per image *per class*, as COCOeval does with ``params.maxDets[-1]``).
- Crowd ground truths (``iscrowd``) are "ignore" regions: their IoU is
  intersection / detection area, a detection matched to one is neither a true nor
  a false positive, and several detections may match the same crowd box.
- Greedy matching in score order; ignored ground truths are tried last and only
  when no regular one matches; among equal IoUs the later ground truth wins.
- Images are accumulated in increasing ``image_id`` order, which decides ties of
  equal scores across images.
- A class without (non-crowd) ground truth has AP -1 and is left out of the means.

Boxes are given as xyxy pixels and converted to COCO's (x, y, w, h) in float64;
IoU uses w and h directly (no +1), as pycocotools does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecv.errors import ConfigError, DatasetError
from edgecv.results import Detections, Segmentation
from edgecv.vision.iou import box_iou_coco

if TYPE_CHECKING:
    from edgecv.data.datasets import Dataset

log = logging.getLogger(__name__)

# Exactly COCOeval's Params.setDetParams() values.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
_T50, _T75 = 0, 5  # indices of IoU 0.50 and 0.75 in IOU_THRESHOLDS

Predictions = Detections | tuple[np.ndarray, np.ndarray, np.ndarray]
ProgressFn = Callable[[int, int], None]


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (COCOeval's summarize()); -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _round(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO box metrics (maxDets ``max_dets``, 100 by default; area "all").

    Attributes:
        map: mAP@0.5:0.95; -1 when no class has ground truth.
        map50: mAP@0.5.
        map75: mAP@0.75.
        mar100: mean recall@0.5:0.95 with at most ``max_dets`` detections per image and class
            (the name is COCO's for the default 100).
        per_class_ap: AP@0.5:0.95 per class index; -1 for classes without ground truth.
        per_class_ap50: AP@0.5 per class index; -1 for classes without ground truth.
        names: class names (index -> name); may be empty.
        num_images: images evaluated.
        num_gt: non-crowd ground-truth boxes.
        num_detections: detections evaluated (after the per-class top-``max_dets`` cut).
        max_dets: COCO's maxDets: detections kept per image and class.
    """

    map: float
    map50: float
    map75: float
    mar100: float
    per_class_ap: tuple[float, ...]
    per_class_ap50: tuple[float, ...]
    names: tuple[str, ...] = ()
    num_images: int = 0
    num_gt: int = 0
    num_detections: int = 0
    max_dets: int = MAX_DETS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; per-class values are keyed by name and ``None`` where a class has no ground truth."""
        labels = [self.names[i] if i < len(self.names) else str(i) for i in range(len(self.per_class_ap))]
        return {
            "task": "detect",
            "map": round(self.map, 6),
            "map50": round(self.map50, 6),
            "map75": round(self.map75, 6),
            "mar100": round(self.mar100, 6),
            "per_class_ap": {
                n: (round(v, 6) if v > -1 else None) for n, v in zip(labels, self.per_class_ap, strict=True)
            },
            "per_class_ap50": {
                n: (round(v, 6) if v > -1 else None) for n, v in zip(labels, self.per_class_ap50, strict=True)
            },
            "num_images": self.num_images,
            "num_gt": self.num_gt,
            "num_detections": self.num_detections,
            "max_det": self.max_dets,
        }


def _to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) float64 COCO x, y, w, h."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _match(ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching for one image and class, at all IoU thresholds at once.

    Args:
        ious: (D, G) float64; rows sorted by descending score, columns with ignored gts last.
        gt_ignore: (G,) bool, ground truths to ignore (crowd).
        gt_crowd: (G,) bool, ground truths that may be matched more than once.

    Returns:
        matched: (T, D) bool, detection matched a ground truth at threshold t.
        ignored: (T, D) bool, detection matched an ignored ground truth (neither TP nor FP).
    """
    num_t = len(IOU_THRESHOLDS)
    num_d, num_g = ious.shape
    matched = np.zeros((num_t, num_d), dtype=bool)
    ignored = np.zeros((num_t, num_d), dtype=bool)
    if num_d == 0 or num_g == 0:
        return matched, ignored
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    taken = np.zeros((num_t, num_g), dtype=bool)  # non-crowd gts already matched, per threshold
    rows = np.arange(num_t)
    for d in np.flatnonzero(ious.max(axis=1) >= thresholds[0, 0]).tolist():  # others match at no threshold
        iou = ious[d]
        ok = (iou[None, :] >= thresholds) & ~taken
        regular = ok & ~gt_ignore
        # an ignored gt is only a candidate when no regular gt qualifies (COCOeval's "break")
        candidates = np.where(regular.any(axis=1, keepdims=True), regular, ok & gt_ignore)
        scored = np.where(candidates, iou[None, :], -1.0)
        best = num_g - 1 - np.argmax(scored[:, ::-1], axis=1)  # last of equal maxima, as COCOeval
        hit = candidates[rows, best]
        matched[hit, d] = True
        ignored[hit, d] = gt_ignore[best[hit]]
        taken[rows[hit], best[hit]] = ~gt_crowd[best[hit]]
    return matched, ignored


@dataclass
class _ClassRecords:
    image_ids: list[int] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    tp: list[np.ndarray] = field(default_factory=list)
    fp: list[np.ndarray] = field(default_factory=list)
    num_gt: int = 0


class DetectionEvaluator:
    """Accumulates per-image matches and computes COCO box mAP (agrees with pycocotools' COCOeval).

    Example:
        >>> ev = DetectionEvaluator(num_classes=3)
        >>> ev.add(0, gt_xyxy, gt_classes, detections)
        >>> ev.compute().map
    """

    def __init__(self, num_classes: int, names: Sequence[str] = (), max_dets: int = MAX_DETS) -> None:
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if max_dets <= 0:
            raise ConfigError(f"max_det must be positive, got {max_dets}", hint="COCO uses 100; dense scenes need more, e.g. 1000")
        self.max_dets = int(max_dets)
        self.num_classes = int(num_classes)
        self.names = tuple(names)
        self._records = [_ClassRecords() for _ in range(self.num_classes)]
        self._image_ids: set[int] = set()
        self._num_detections = 0

    def _check_classes(self, what: str, class_ids: np.ndarray) -> None:
        if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= self.num_classes):
            bad = sorted({int(c) for c in class_ids if not 0 <= c < self.num_classes})
            raise ValueError(f"{what} class ids must be in [0, {self.num_classes}), got {bad[:10]}")

    def add(
        self,
        image_id: int,
        gt_boxes: np.ndarray,
        gt_classes: np.ndarray,
        pred: Predictions,
        gt_iscrowd: np.ndarray | None = None,
    ) -> None:
        """Match one image's predictions to its ground truth.

        Args:
            image_id: unique id of the image; ties of equal scores across images are broken in id order.
            gt_boxes: (G, 4) xyxy pixels.
            gt_classes: (G,) int class indices in [0, num_classes).
            pred: :class:`Detections`, or a tuple ``(xyxy (D, 4), scores (D,), class_ids (D,))``.
            gt_iscrowd: optional (G,) bool crowd flags (ignored regions, as in COCO).
        """
        image_id = int(image_id)
        if image_id in self._image_ids:
            raise ValueError(f"image_id {image_id} was already added; each image must be added once")
        gt_xywh = _to_xywh(gt_boxes)
        gt_cls = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
        crowd = np.zeros(len(gt_cls), bool) if gt_iscrowd is None else np.asarray(gt_iscrowd, bool).reshape(-1)
        if isinstance(pred, Detections):
            dt_boxes, dt_scores, dt_cls = pred.xyxy, pred.scores, pred.class_ids
        else:
            dt_boxes, dt_scores, dt_cls = pred
        dt_xywh = _to_xywh(dt_boxes)
        # float32 scores are widened exactly, so the order matches COCOeval fed with float(score)
        dt_scores = np.asarray(dt_scores, dtype=np.float64).reshape(-1)
        dt_cls = np.asarray(dt_cls, dtype=np.int64).reshape(-1)
        if not len(gt_xywh) == len(gt_cls) == len(crowd):
            raise ValueError(
                f"ground truth lengths differ: {len(gt_xywh)} boxes, {len(gt_cls)} classes, {len(crowd)} iscrowd"
            )
        if not len(dt_xywh) == len(dt_scores) == len(dt_cls):
            raise ValueError(
                f"prediction lengths differ: {len(dt_xywh)} boxes, {len(dt_scores)} scores, {len(dt_cls)} classes"
            )
        self._check_classes("ground-truth", gt_cls)
        self._check_classes("predicted", dt_cls)
        self._image_ids.add(image_id)

        for k in np.union1d(gt_cls, dt_cls).tolist():
            g_sel = np.flatnonzero(gt_cls == k)
            g_sel = g_sel[np.argsort(crowd[g_sel], kind="mergesort")]  # ignored (crowd) last
            g_crowd = crowd[g_sel]
            d_sel = np.flatnonzero(dt_cls == k)
            d_sel = d_sel[np.argsort(-dt_scores[d_sel], kind="mergesort")][: self.max_dets]
            if len(g_sel) and len(d_sel):
                ious = box_iou_coco(dt_xywh[d_sel], gt_xywh[g_sel], g_crowd)
                matched, ignored = _match(ious, g_crowd, g_crowd)
            else:  # nothing to match: every detection is a false positive
                matched = ignored = np.zeros((len(IOU_THRESHOLDS), len(d_sel)), dtype=bool)
            rec = self._records[k]
            rec.image_ids.append(image_id)
            rec.scores.append(dt_scores[d_sel])
            rec.tp.append(matched & ~ignored)
            rec.fp.append(~matched & ~ignored)
            rec.num_gt += int(np.count_nonzero(~g_crowd))
            self._num_detections += len(d_sel)

    @classmethod
    def combine(cls, parts: Sequence[DetectionEvaluator]) -> DetectionEvaluator:
        """One evaluator over the images of ``parts``, in order (a part may repeat: a bootstrap over images).

        Each part's images are taken as if added again, with image ids renumbered by position.
        """
        if not parts:
            raise ValueError("combine needs at least one evaluator")
        merged = cls(parts[0].num_classes, parts[0].names)
        offset = 0
        for part in parts:
            ids = sorted(part._image_ids)
            new_id = {old: offset + i for i, old in enumerate(ids)}
            for rec, src in zip(merged._records, part._records, strict=True):
                rec.image_ids.extend(new_id[i] for i in src.image_ids)
                rec.scores.extend(src.scores)
                rec.tp.extend(src.tp)
                rec.fp.extend(src.fp)
                rec.num_gt += src.num_gt
            merged._image_ids.update(new_id.values())
            merged._num_detections += part._num_detections
            offset += len(ids)
        return merged

    def _accumulate(self, rec: _ClassRecords) -> tuple[np.ndarray, np.ndarray]:
        """COCOeval.accumulate() for one class: (T, R) precision and (T,) recall."""
        num_t, num_r = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
        order = np.argsort(rec.image_ids, kind="mergesort")  # COCOeval walks images in id order
        scores = np.concatenate([rec.scores[i] for i in order])
        tp = np.concatenate([rec.tp[i] for i in order], axis=1)
        fp = np.concatenate([rec.fp[i] for i in order], axis=1)
        by_score = np.argsort(-scores, kind="mergesort")
        tp_sum = np.cumsum(tp[:, by_score], axis=1).astype(np.float64)
        fp_sum = np.cumsum(fp[:, by_score], axis=1).astype(np.float64)
        nd = len(scores)
        precision = np.zeros((num_t, num_r))
        if nd == 0:
            return precision, np.zeros(num_t)
        rc = tp_sum / rec.num_gt
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.flip(np.maximum.accumulate(np.flip(pr, axis=1), axis=1), axis=1)  # precision envelope
        for t in range(num_t):
            inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
            inside = inds < nd
            precision[t, inside] = pr[t, inds[inside]]
        return precision, rc[:, -1]

    def compute(self) -> DetectionMetrics:
        """Accumulate all images added so far into :class:`DetectionMetrics`."""
        num_t, num_r, num_k = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), self.num_classes
        precision = -np.ones((num_t, num_r, num_k))
        recall = -np.ones((num_t, num_k))
        for k, rec in enumerate(self._records):
            if rec.num_gt == 0:
                continue  # no regular ground truth: AP -1, left out of the means
            precision[:, :, k], recall[:, k] = self._accumulate(rec)
        return DetectionMetrics(
            map=_mean_valid(precision),
            map50=_mean_valid(precision[_T50]),
            map75=_mean_valid(precision[_T75]),
            mar100=_mean_valid(recall),
            per_class_ap=tuple(_mean_valid(precision[:, :, k]) for k in range(num_k)),
            per_class_ap50=tuple(_mean_valid(precision[_T50, :, k]) for k in range(num_k)),
            names=self.names,
            num_images=len(self._image_ids),
            num_gt=sum(r.num_gt for r in self._records),
            num_detections=self._num_detections,
            max_dets=self.max_dets,
        )


# --------------------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class SegmentationMetrics:
    """Semantic segmentation metrics from a confusion matrix.

    A class counts in the means only when its union (GT or predicted pixels) is
    non-empty; its per-class values are NaN otherwise. Background (class 0) is a
    class like the others, as in the usual VOC/Cityscapes mIoU.

    Attributes:
        miou: mean IoU over classes with a non-empty union.
        pixel_accuracy: correct / all non-ignored pixels.
        mean_accuracy: mean per-class recall over classes present in the GT.
        mean_dice: mean Dice (F1) over the same classes as ``miou``.
        per_class_iou: IoU per class index (NaN when absent from both GT and prediction).
        per_class_dice: Dice per class index (NaN likewise).
        names: class names (index -> name); may be empty.
        num_images: images evaluated.
        num_pixels: non-ignored pixels evaluated.
        confusion: (K, K) int64, rows = ground truth, columns = prediction.
    """

    miou: float
    pixel_accuracy: float
    mean_accuracy: float
    mean_dice: float
    per_class_iou: tuple[float, ...]
    per_class_dice: tuple[float, ...]
    names: tuple[str, ...] = ()
    num_images: int = 0
    num_pixels: int = 0
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; NaN values (absent classes) become ``None``. The confusion matrix is omitted."""
        labels = [self.names[i] if i < len(self.names) else str(i) for i in range(len(self.per_class_iou))]
        return {
            "task": "segment",
            "miou": _round(self.miou),
            "pixel_accuracy": _round(self.pixel_accuracy),
            "mean_accuracy": _round(self.mean_accuracy),
            "mean_dice": _round(self.mean_dice),
            "per_class_iou": {n: _round(v) for n, v in zip(labels, self.per_class_iou, strict=True)},
            "per_class_dice": {n: _round(v) for n, v in zip(labels, self.per_class_dice, strict=True)},
            **(  # background / foreground (one-channel segmenters): the foreground's IoU and Dice
                {"binary_iou": _round(self.per_class_iou[1]), "binary_dice": _round(self.per_class_dice[1])}
                if len(self.per_class_iou) == 2 else {}
            ),
            "num_images": self.num_images,
            "num_pixels": self.num_pixels,
        }


class SegmentationEvaluator:
    """Accumulates a confusion matrix over (prediction, ground truth) class maps."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255, names: Sequence[str] = ()) -> None:
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.names = tuple(names)
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image.

        Args:
            pred: (H, W) integer predicted class per pixel, in [0, num_classes).
            gt: (H, W) integer ground-truth class per pixel; ``ignore_index`` pixels are skipped.

        Raises:
            ValueError: shapes differ or a predicted class is out of range.
            DatasetError: a ground-truth value is neither a class nor ``ignore_index``.
        """
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction and ground truth shapes differ: {pred.shape} vs {gt.shape}")
        k = self.num_classes
        valid = np.ones(gt.shape, bool) if self.ignore_index is None else gt != self.ignore_index
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if g.size and (g.min() < 0 or g.max() >= k):
            bad = np.unique(g[(g < 0) | (g >= k)])[:10].tolist()
            raise DatasetError(
                f"ground-truth mask has values {bad} outside the {k} classes [0, {k})",
                hint=f"masks must hold 0 = background, 1..{k - 1} = classes, or {self.ignore_index} = ignore",
            )
        if p.size and (p.min() < 0 or p.max() >= k):
            bad = np.unique(p[(p < 0) | (p >= k)])[:10].tolist()
            raise ValueError(f"predicted class map has values {bad} outside [0, {k})")
        self.confusion += np.bincount(g * k + p, minlength=k * k).reshape(k, k)
        self.num_images += 1

    def compute(self) -> SegmentationMetrics:
        """Metrics over everything added so far (NaN where nothing was counted)."""
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        gt_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
        union = gt_count + pred_count - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            dice = np.where(union > 0, 2 * tp / (gt_count + pred_count), np.nan)
            acc = np.where(gt_count > 0, tp / gt_count, np.nan)
        total = cm.sum()

        def mean(values: np.ndarray) -> float:
            return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan

        return SegmentationMetrics(
            miou=mean(iou),
            pixel_accuracy=float(tp.sum() / total) if total else math.nan,
            mean_accuracy=mean(acc),
            mean_dice=mean(dice),
            per_class_iou=tuple(float(v) for v in iou),
            per_class_dice=tuple(float(v) for v in dice),
            names=self.names,
            num_images=self.num_images,
            num_pixels=int(total),
            confusion=self.confusion.copy(),
        )


# --------------------------------------------------------------------------- driver


def check_class_lists(model_names: tuple[str, ...], data_names: tuple[str, ...], *, task: str, generic: bool) -> None:
    """Model class i must be dataset class i: equal counts required, differing names warned about.

    A segmenter's names start with "background", which the dataset's category list lacks.
    """
    offset = 1 if task == "segment" else 0
    compared = model_names[offset:]
    if generic and not data_names:  # e.g. images/ + masks/ with no category list: mask values are checked per image
        log.debug("dataset lists no categories; assuming they follow the model's %s", list(model_names))
        return
    if len(compared) != len(data_names):
        extra = " (background + categories)" if offset else ""
        raise ConfigError(
            f"the model has {len(model_names)} classes{extra} {list(model_names)[:8]}, but the dataset has "
            f"{len(data_names)} categories {list(data_names)[:8]}",
            hint="evaluate on a dataset labelled with the model's classes, in the same order "
            f"(model class i{' + 1' if offset else ''} is compared with dataset category i)",
        )
    diff = [
        (i, m, d)
        for i, (m, d) in enumerate(zip(compared, data_names, strict=True))
        if m.strip().lower() != d.strip().lower()
    ]
    if diff and generic:
        log.debug("dataset has no class names; assuming they follow the model's %s", list(model_names))
    elif diff:
        shown = ", ".join(f"{i + offset}: model {m!r} / dataset {d!r}" for i, m, d in diff[:5])
        log.warning("model and dataset class names differ (%s); comparing them by index anyway", shown)


def evaluate(
    model: Any,
    dataset: Dataset,
    *,
    progress: ProgressFn | None = None,
    max_images: int | None = None,
    max_det: int = MAX_DETS,
) -> DetectionMetrics | SegmentationMetrics:
    """Run ``model`` over ``dataset`` and score it.

    Detection uses the model's current thresholds: for a COCO-comparable mAP set a low
    confidence threshold (e.g. 0.001) on the model first.

    Args:
        model: an edgecv model: ``.task`` ("detect" | "segment"), ``.names`` (tuple of str) and
            ``model(bgr_uint8_image)`` returning :class:`Detections` / :class:`Segmentation` in
            original-image pixels. Segmenters' names include "background" at index 0.
        dataset: from :func:`edgecv.data.datasets.open_dataset`; detection needs labels (COCO or
            YOLO), segmentation needs semantic masks (``masks/*.png``).
        progress: optional ``progress(done, total)`` called after each image.
        max_images: evaluate only the first N images.
        max_det: COCO's maxDets, detections scored per image and class (default 100, COCO's).
            The model's own ``max_det`` (per image) should be at least this.

    Returns:
        :class:`DetectionMetrics` or :class:`SegmentationMetrics`.

    Raises:
        ConfigError: unknown task, class lists that do not line up, bad ``max_images``.
        DatasetError: the dataset lacks the labels or masks the task needs.
    """
    task = getattr(model, "task", None)
    if task not in ("detect", "segment"):
        raise ConfigError(f"cannot evaluate a model with task {task!r}", hint="evaluate a detector or a segmenter")
    if max_images is not None and max_images <= 0:
        raise ConfigError(f"max_images must be positive, got {max_images}")
    samples = list(dataset.samples[:max_images] if max_images else dataset.samples)
    if not samples:
        raise DatasetError(f"the dataset at {dataset.root} has no images to evaluate")
    model_names = tuple(str(n) for n in model.names)
    generic = not dataset.has_names
    total = len(samples)
    start = time.perf_counter()

    if task == "detect":
        if dataset.kind == "images":
            raise DatasetError(
                f"{dataset.root} is a plain image folder: it has no box labels to evaluate against",
                hint="pass a COCO dataset (annotations.json + images/) or a YOLO dataset (images/ + labels/)",
            )
        check_class_lists(model_names, dataset.names, task=task, generic=generic)
        conf = getattr(model, "conf", None)
        if isinstance(conf, float) and conf > 0.01:
            log.info("model confidence threshold is %.3g; COCO mAP is usually measured with 0.001", conf)
        model_cap = getattr(model, "max_det", None)
        if isinstance(model_cap, int) and model_cap < max_det:
            log.warning("the model keeps at most %d detections per image, fewer than max_det %d", model_cap, max_det)
        det_eval = DetectionEvaluator(len(model_names), names=model_names, max_dets=max_det)
        for done, sample in enumerate(samples, 1):
            result = model(sample.load_image())
            if not isinstance(result, Detections):
                raise TypeError(f"a detect model must return Detections, got {type(result).__name__}")
            det_eval.add(sample.image_id, sample.boxes, sample.class_ids, result, gt_iscrowd=sample.iscrowd)
            if progress:
                progress(done, total)
        det = det_eval.compute()
        log.info(
            "evaluated %d images in %.1f s: mAP50-95 %.4f, mAP50 %.4f",
            total,
            time.perf_counter() - start,
            det.map,
            det.map50,
        )
        return det

    missing = [s for s in samples if s.semantic_mask_path is None]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {total} images have no semantic mask (first: {missing[0].path.name})",
            hint="segmentation eval needs DIR/masks/<image stem>.png (uint8, 0 = background, k = k-th category) "
            "next to DIR/images/",
        )
    check_class_lists(model_names, dataset.names, task=task, generic=generic)
    seg_eval = SegmentationEvaluator(len(model_names), names=model_names)
    for done, sample in enumerate(samples, 1):
        image = sample.load_image()
        gt = sample.load_semantic_mask()
        assert gt is not None  # checked above
        if gt.shape != image.shape[:2]:
            raise DatasetError(
                f"mask {sample.semantic_mask_path} is {gt.shape[1]}x{gt.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}",
                hint="semantic masks must have the size of their image",
            )
        result = model(image)
        if not isinstance(result, Segmentation):
            raise TypeError(f"a segment model must return Segmentation, got {type(result).__name__}")
        seg_eval.add(result.class_map, gt)
        if progress:
            progress(done, total)
    seg = seg_eval.compute()
    log.info("evaluated %d images in %.1f s: mIoU %.4f", total, time.perf_counter() - start, seg.miou)
    return seg
