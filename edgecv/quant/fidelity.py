"""Fidelity at the operating point, and how sure a held-out figure is (bootstrap over images).

**Detectors.** The reference is a set of detections at the run's threshold (``--conf``,
NMS at ``--iou``): the FP32 model's, or the labels. The candidate (the INT8 model at the
same threshold) is matched to it greedily, highest candidate score first, each to the
unmatched reference box of the *same class* with the highest IoU, if that IoU is >= 0.5
(:data:`MATCH_IOU`). From the matches of all images:

- recall = matched / reference (what the robot still sees), precision = matched /
  candidate (what it sees that FP32 did not), F1;
- score change of matched pairs (candidate - reference): mean and worst (most negative);
- mean IoU of matched pairs.

**Segmenters.** Pixel agreement (share of pixels with the same class) and mIoU of the
candidate's class map against the reference's.

**Uncertainty.** Every quantity is a ratio of sums over images, so a bootstrap over
images (resample the held-out images with replacement, recompute) gives its spread
cheaply; :func:`bootstrap_interval` returns the 2.5/97.5 percentiles (a 95 % interval).
Drops are paired: FP32 and INT8 are resampled on the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MATCH_IOU = 0.5
BOOTSTRAP_SAMPLES = 400
CONFIDENCE = 0.95


@dataclass(frozen=True)
class DetectionMatch:
    """One image's match of candidate detections to reference detections.

    Attributes:
        reference / candidate / matched: counts.
        score_change: (matched,) float64, candidate score - reference score per pair.
        iou: (matched,) float64, IoU per pair.
    """

    reference: int
    candidate: int
    matched: int
    score_change: np.ndarray
    iou: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU (float64)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_detections(
    ref_xyxy: np.ndarray,
    ref_scores: np.ndarray | None,
    ref_classes: np.ndarray,
    xyxy: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    *,
    iou_threshold: float = MATCH_IOU,
) -> DetectionMatch:
    """Greedy same-class match, candidates by descending score (see the module doc).

    Args:
        ref_xyxy: (R, 4) reference boxes; ref_scores: (R,) or None (labels have no score:
            score changes are then empty); ref_classes: (R,) int.
        xyxy, scores, classes: (C, 4), (C,), (C,) candidate detections.
    """
    ref_classes = np.asarray(ref_classes, np.int64).reshape(-1)
    classes = np.asarray(classes, np.int64).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    num_ref, num_cand = len(ref_classes), len(classes)
    empty = np.zeros(0, np.float64)
    if not num_ref or not num_cand:
        return DetectionMatch(num_ref, num_cand, 0, empty, empty)
    ious = box_iou(xyxy, ref_xyxy)
    ious[classes[:, None] != ref_classes[None, :]] = -1.0
    taken = np.zeros(num_ref, bool)
    pairs: list[tuple[int, int]] = []
    for c in np.argsort(-scores, kind="stable"):
        row = np.where(taken, -1.0, ious[c])
        r = int(np.argmax(row))
        if row[r] >= iou_threshold:
            taken[r] = True
            pairs.append((int(c), r))
    if not pairs:
        return DetectionMatch(num_ref, num_cand, 0, empty, empty)
    cand_idx, ref_idx = (np.array(v) for v in zip(*pairs))
    change = empty if ref_scores is None else scores[cand_idx] - np.asarray(ref_scores, np.float64).reshape(-1)[ref_idx]
    return DetectionMatch(num_ref, num_cand, len(pairs), change, ious[cand_idx, ref_idx])


class DetectionFidelity:
    """Per-image match results, summarised and bootstrapped (see the module doc)."""

    def __init__(self, matches: Sequence[DetectionMatch]) -> None:
        self.matches = list(matches)
        self.ref = np.array([m.reference for m in matches], np.float64)
        self.cand = np.array([m.candidate for m in matches], np.float64)
        self.hit = np.array([m.matched for m in matches], np.float64)
        self.change_sum = np.array([m.score_change.sum() for m in matches], np.float64)
        self.change_n = np.array([m.score_change.size for m in matches], np.float64)
        self.iou_sum = np.array([m.iou.sum() for m in matches], np.float64)

    def __len__(self) -> int:
        return len(self.matches)

    @staticmethod
    def _ratios(ref: np.ndarray, cand: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(ref > 0, hit / np.maximum(ref, 1), 1.0)  # nothing to find: nothing lost
            precision = np.where(cand > 0, hit / np.maximum(cand, 1), 1.0)  # nothing found: nothing spurious
            f1 = np.where(recall + precision > 0, 2 * recall * precision / (recall + precision), 0.0)
        return recall, precision, f1

    def summary(self) -> dict[str, float | int | None]:
        """recall, precision, f1 (0-1), mean/worst score change, mean IoU, counts."""
        recall, precision, f1 = (float(v) for v in self._ratios(self.ref.sum(), self.cand.sum(), self.hit.sum()))
        changes = np.concatenate([m.score_change for m in self.matches]) if self.matches else np.zeros(0)
        ious = np.concatenate([m.iou for m in self.matches]) if self.matches else np.zeros(0)
        return {
            "images": len(self.matches),
            "reference": int(self.ref.sum()),
            "candidate": int(self.cand.sum()),
            "matched": int(self.hit.sum()),
            "recall": recall,
            "precision": precision,
            "f1": f1,
            "mean_score_change": float(changes.mean()) if changes.size else None,
            "worst_score_change": float(changes.min()) if changes.size else None,
            "mean_iou": float(ious.mean()) if ious.size else None,
        }

    def resampled(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The summary's ratios for each row of image indices ``idx`` (B, n)."""
        ref, cand, hit = self.ref[idx].sum(1), self.cand[idx].sum(1), self.hit[idx].sum(1)
        recall, precision, f1 = self._ratios(ref, cand, hit)
        n = self.change_n[idx].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_change = np.where(n > 0, self.change_sum[idx].sum(1) / np.maximum(n, 1), 0.0)
        return {"recall": recall, "precision": precision, "f1": f1, "mean_score_change": mean_change}


@dataclass(frozen=True)
class SegmentationMatch:
    """One image's confusion matrix, reference (rows) x candidate (columns), ignored pixels left out."""

    confusion: np.ndarray  # (K, K) int64


def confusion(reference: np.ndarray, candidate: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> SegmentationMatch:
    ref = np.asarray(reference, np.int64).ravel()
    cand = np.asarray(candidate, np.int64).ravel()
    if ref.shape != cand.shape:
        raise ValueError(f"class maps differ in size: {np.shape(reference)} vs {np.shape(candidate)}")
    keep = (ref >= 0) & (ref < num_classes) & (cand >= 0) & (cand < num_classes)
    if ignore_index is not None:
        keep &= ref != ignore_index
    counts = np.bincount(ref[keep] * num_classes + cand[keep], minlength=num_classes * num_classes)
    return SegmentationMatch(counts.reshape(num_classes, num_classes))


def miou_of(conf: np.ndarray) -> tuple[float, float]:
    """(mIoU, pixel agreement) of one confusion matrix, or of a batch (B, K, K) -> arrays.

    A class counts in the mean only when its union (reference or candidate pixels) is
    non-empty, as in :class:`edgecv.bench.accuracy.SegmentationEvaluator`.
    """
    conf = np.asarray(conf, np.float64)
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(-1) + conf.sum(-2) - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
        miou = np.nanmean(np.where(np.isnan(iou).all(-1, keepdims=True), 0.0, iou), -1)
        total = conf.sum((-2, -1))
        agree = np.where(total > 0, diag.sum(-1) / np.maximum(total, 1), 1.0)
    return miou, agree


class SegmentationFidelity:
    """Per-image confusion matrices against the reference, summarised and bootstrapped."""

    def __init__(self, matches: Sequence[SegmentationMatch]) -> None:
        self.conf = np.stack([m.confusion for m in matches]) if matches else np.zeros((0, 1, 1), np.int64)

    def __len__(self) -> int:
        return len(self.conf)

    def summary(self) -> dict[str, float | int]:
        miou, agree = miou_of(self.conf.sum(0))
        return {"images": len(self.conf), "pixels": int(self.conf.sum()), "pixel_agreement": float(agree), "miou": float(100 * miou)}

    def resampled(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        miou, agree = miou_of(self.conf[idx].sum(1))
        return {"pixel_agreement": agree, "miou": 100 * miou}


def resample_indices(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> np.ndarray:
    """(samples, n) image indices drawn with replacement (seeded: the same draws for FP32 and INT8)."""
    return np.random.default_rng(seed).integers(0, max(n, 1), size=(samples, n))


def bootstrap_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap replicates."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return (float("nan"), float("nan"))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def images_needed(n: int, width: float, tolerance: float) -> int:
    """Held-out images for an interval of width ``tolerance``, when ``n`` gave ``width`` (width ~ 1/sqrt(n))."""
    if width <= tolerance or n <= 0:
        return n
    if tolerance <= 0:
        return -1  # no finite number: only a zero-width interval meets a zero tolerance
    return int(np.ceil(n * (width / tolerance) ** 2))


Replicate = Callable[[np.ndarray], np.ndarray]
