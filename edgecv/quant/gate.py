"""Accuracy on held-out images, and the gate that returns INT8 layers to float until it holds.

**Scores** are in points (metric x 100): mAP@0.5:0.95 for detectors, mIoU for
segmenters. With labels (a COCO/YOLO dataset) they are measured against the labels.
Without labels (frames from the user's own camera) they are *agreement with the FP32
model*: the FP32 detections at the run-time threshold (0.25) are the ground truth for the
INT8 detections (mAP), and the FP32 class map is the ground truth for the INT8 class map
(mIoU). The FP32 model scores itself the same way, so "drop" means the same thing in
both cases.

**The gate** (``--max-drop``):

1. Sensitivity: each layer (:class:`~edgecv.quant.qdq.Placement`) is quantized *alone*
   and the model's raw outputs are compared with FP32's on a few held-out images. The
   error is normalised per output channel (``mean((q - f)^2) / var(f)``, averaged over
   channels), so 600-px box channels and 0-1 score channels weigh the same: a layer that
   wipes out the class scores of a YOLOv8 output is found even though the boxes dominate
   the raw MSE.
2. Fallback: the ``k`` most sensitive layers go back to float; the smallest ``k`` whose
   drop is within ``max_drop`` is searched on a subset of the held-out images (doubling,
   then bisecting), confirmed on all of them (``k`` grows until it is), then narrowed by
   bisecting on all of them (the subset is noisy where accuracy barely moves with ``k``).

Every trial reuses the same activation statistics; only the graph is rebuilt.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.errors import ConfigError, DatasetError
from edgecv.quant.calib_data import CalibImage

log = logging.getLogger(__name__)

PSEUDO_GT_CONF = 0.25  # the FP32 detections that count as "what the robot would have seen"
EVAL_CONF = 0.001  # COCO-style: score every detection
EVAL_IOU = 0.6  # as `edgecv eval`
Progress = Callable[[int, int], None]


@dataclass
class _Image:
    feeds: dict[str, np.ndarray]
    transform: Any
    truth: Any  # labelled: Sample; unlabelled: filled from the FP32 model


class HeldOut:
    """Held-out images preprocessed once, scored against labels or against the FP32 model.

    Args:
        images: the held-out images (never calibration images).
        reference: path of the FP32 model (metadata, and the truth when unlabelled).
        dataset: the labelled dataset ``images`` come from, or None.
        threads: ONNX Runtime threads for scoring.
    """

    def __init__(self, images: Sequence[CalibImage], reference: Path, *, dataset: Any = None, threads: int | None = None) -> None:
        import edgecv

        if not images:
            raise DatasetError("no held-out images to measure accuracy on", hint="raise --holdout or pass --val")
        self.reference = Path(reference)
        self.threads = threads
        self.labelled = dataset is not None
        self.dataset = dataset
        self.skipped: list[str] = []
        with edgecv.load(self.reference, conf=EVAL_CONF, iou=EVAL_IOU, threads=threads) as model:
            self.meta: ModelMeta = model.meta
            self.task = model.task
            self.names = model.names
            if self.labelled:
                from edgecv.bench.accuracy import check_class_lists

                check_class_lists(tuple(self.names), tuple(dataset.names), task=self.task, generic=not dataset.has_names)
                if self.task == "segment" and not dataset.has_masks:
                    raise DatasetError(
                        f"{dataset.root} has no semantic masks to measure mIoU against",
                        hint="pass a dataset with masks/ (or an image folder: the gate then measures agreement with FP32)",
                    )
            self.images = self._prepare(images, model)

    @property
    def metric(self) -> str:
        base = "mAP50-95" if self.task == "detect" else "mIoU"
        return base if self.labelled else f"{base} vs FP32"

    def __len__(self) -> int:
        return len(self.images)

    def _prepare(self, images: Sequence[CalibImage], model: Any) -> list[_Image]:
        prepared = []
        for image in images:
            frame = image.try_load(self.skipped, what="held-out image")
            if frame is None:
                continue
            feeds, transform = model.preprocess(frame)
            if self.labelled:
                truth = image.sample
                if self.task == "segment":
                    truth = truth.load_semantic_mask()
            else:
                result = model.postprocess(model.infer(feeds), transform)
                truth = result.class_map if self.task == "segment" else result
            prepared.append(_Image(feeds, transform, truth))
        if not prepared:
            raise DatasetError("none of the held-out images could be read")
        return prepared

    def score(self, path: Path, *, limit: int | None = None) -> float:
        """The model's score in points on the first ``limit`` held-out images (all when None)."""
        import edgecv

        images = self.images[:limit] if limit else self.images
        with edgecv.load(path, conf=EVAL_CONF, iou=EVAL_IOU, threads=self.threads) as model:
            if self.task == "detect":
                return self._detection_score(model, images)
            return self._segmentation_score(model, images)

    def _detection_score(self, model: Any, images: Sequence[_Image]) -> float:
        from edgecv.bench.accuracy import DetectionEvaluator

        evaluator = DetectionEvaluator(len(self.names), names=self.names)
        for i, image in enumerate(images):
            result = model.postprocess(model.infer(image.feeds), image.transform)
            if self.labelled:
                sample = image.truth
                evaluator.add(i, sample.boxes, sample.class_ids, result, gt_iscrowd=sample.iscrowd)
            else:
                ref = image.truth
                keep = ref.scores >= PSEUDO_GT_CONF
                evaluator.add(i, ref.xyxy[keep], ref.class_ids[keep], result)
        value = evaluator.compute().map
        return 100.0 * max(value, 0.0) if value > -1 else 100.0  # no pseudo ground truth at all: nothing to disagree on

    def _segmentation_score(self, model: Any, images: Sequence[_Image]) -> float:
        from edgecv.bench.accuracy import SegmentationEvaluator

        evaluator = SegmentationEvaluator(len(self.names), names=self.names)
        for image in images:
            result = model.postprocess(model.infer(image.feeds), image.transform)
            evaluator.add(result.class_map, image.truth)
        return 100.0 * evaluator.compute().miou

    def raw_outputs(self, path: Path, count: int) -> list[np.ndarray]:
        """The model's raw outputs (first output) on the first ``count`` images, for sensitivity."""
        import edgecv

        with edgecv.load(path, conf=EVAL_CONF, iou=EVAL_IOU, threads=self.threads) as model:
            return [next(iter(model.infer(image.feeds).values())) for image in self.images[:count]]


def output_error(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Mean over channels (axis 1) of ``mean((q - f)^2) / var(f)``, over all images."""
    num, den = None, None
    for q, f in zip(outputs, reference, strict=True):
        q64, f64 = np.asarray(q, np.float64), np.asarray(f, np.float64)
        if f64.ndim < 2:
            q64, f64 = q64.reshape(1, 1, -1), f64.reshape(1, 1, -1)
        axes = tuple(i for i in range(f64.ndim) if i != 1)
        sq = ((q64 - f64) ** 2).sum(axis=axes)
        mean = f64.mean(axis=axes, keepdims=True)
        var = ((f64 - mean) ** 2).sum(axis=axes)
        num = sq if num is None else num + sq
        den = var if den is None else den + var
    assert num is not None and den is not None
    return float(np.mean(num / np.maximum(den, 1e-12)))


@dataclass
class Trial:
    kept: int  # layers kept float
    subset: float | None = None
    full: float | None = None

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {"kept_float_layers": self.kept, "subset_score": r(self.subset), "full_score": r(self.full)}


@dataclass
class GateResult:
    """What the gate chose and how.

    Attributes:
        kept_layers: layer labels returned to float, most sensitive first.
        kept_nodes: their node names (what the quantizer excludes).
        score: the final score on all held-out images; ``passed`` whether within the limit.
        sensitivity: ``{layer: output error when quantized alone}``, most sensitive first.
        trials: every configuration scored.
    """

    kept_layers: list[str]
    kept_nodes: list[str]
    score: float
    passed: bool
    sensitivity: dict[str, float] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept_float_layers": self.kept_layers,
            "kept_float_nodes": len(self.kept_nodes),
            "score": round(self.score, 3),
            "passed": self.passed,
            "sensitivity": {k: float(f"{v:.4g}") for k, v in self.sensitivity.items()},
            "trials": [t.to_dict() for t in self.trials],
            "seconds": round(self.seconds, 1),
        }


def run_gate(
    build: Callable[[Sequence[str]], Path],
    layers: dict[str, tuple[str, ...]],
    held: HeldOut,
    *,
    baseline: float,
    baseline_subset: float,
    max_drop: float,
    subset: int,
    sensitivity_images: int = 8,
    progress: Progress | None = None,
) -> GateResult:
    """Return layers to float, most sensitive first, until the drop is within ``max_drop`` points.

    Args:
        build: ``build(kept_float_node_names) -> path`` of the INT8 model with those nodes float.
        layers: ``{label: node names}`` the quantizer quantizes (the fallback units).
        held: the held-out images.
        baseline / baseline_subset: the FP32 score on all held-out images / on the subset.
        max_drop: allowed drop in points.
        subset: images in the quick subset.
        sensitivity_images: images for the per-layer sensitivity.
        progress: ``progress(done, total)`` over the sensitivity pass.
    """
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0, got {max_drop}")
    start = time.perf_counter()
    labels = list(layers)
    everything = [n for names in layers.values() for n in names]
    reference = held.raw_outputs(held.reference, sensitivity_images)  # the FP32 model's outputs
    errors: dict[str, float] = {}
    for done, label in enumerate(labels, 1):
        mine = set(layers[label])
        errors[label] = output_error(held.raw_outputs(build([n for n in everything if n not in mine]), sensitivity_images), reference)
        if progress:
            progress(done, len(labels))
    order = sorted(labels, key=lambda k: -errors[k])
    sensitivity = {k: errors[k] for k in order}

    def nodes_of(k: int) -> list[str]:
        return [n for label in order[:k] for n in layers[label]]

    trials: dict[int, Trial] = {}

    def within(k: int, full: bool) -> bool:
        trial = trials.setdefault(k, Trial(k))
        path = build(nodes_of(k))
        if full:
            trial.full = held.score(path)
            return trial.full >= baseline - max_drop
        trial.subset = held.score(path, limit=subset)
        return trial.subset >= baseline_subset - max_drop

    n = len(order)
    low, high = 0, 0  # invariant once found: high passes on the subset, everything <= low failed
    if not within(0, full=False):
        step = 1
        while True:
            high = min(n, step)
            if within(high, full=False) or high == n:
                break
            low, step = high, step * 2
        while high - low > 1:
            mid = (low + high) // 2
            if within(mid, full=False):
                high = mid
            else:
                low = mid
    k = high
    while not within(k, full=True) and k < n:
        log.info("%d layers float pass on the subset but not on all held-out images; trying more", k)
        k = min(n, max(k + 1, k + k // 2))
    # The subset is noisy where the curve is flat and can overshoot: bisect on all held-out
    # images between the largest k known to fail there (plain INT8, k = 0, did) and k.
    low = max((t.kept for t in trials.values() if t.full is not None and t.full < baseline - max_drop and t.kept < k), default=0)
    while k - low > 1 and trials[k].full is not None and trials[k].full >= baseline - max_drop:
        mid = (low + k) // 2
        if within(mid, full=True):
            k = mid
        else:
            low = mid
    final = trials[k]
    assert final.full is not None
    result = GateResult(
        kept_layers=order[:k],
        kept_nodes=nodes_of(k),
        score=final.full,
        passed=final.full >= baseline - max_drop,
        sensitivity=sensitivity,
        trials=sorted(trials.values(), key=lambda t: t.kept),
        seconds=time.perf_counter() - start,
    )
    log.info("gate: %d of %d layers kept float, %.2f points (FP32 %.2f) in %.1f s", k, n, final.full, baseline, result.seconds)
    return result


class ModelBuilder:
    """Writes INT8 variants of one model to a scratch folder, by kept-float node set (memoised)."""

    def __init__(self, build_graph: Callable[[Sequence[str]], Any], meta: ModelMeta) -> None:
        self._build_graph = build_graph
        self._meta = meta
        self._dir = tempfile.TemporaryDirectory(prefix="edgecv-gate-")
        self._paths: dict[frozenset[str], Path] = {}

    def __call__(self, keep_float: Sequence[str]) -> Path:
        key = frozenset(keep_float)
        path = self._paths.get(key)
        if path is None:
            import onnx

            from edgecv.export.graph import set_metadata

            model = set_metadata(self._build_graph(sorted(key)), self._meta)
            path = Path(self._dir.name) / f"trial{len(self._paths)}.onnx"
            onnx.save_model(model, str(path))
            self._paths[key] = path
        return path

    def close(self) -> None:
        self._dir.cleanup()
