"""Accuracy on held-out images, and the gate that returns INT8 layers to float until it holds.

**What is measured** (:class:`Evaluation`), on held-out images never calibrated on:

- *Score* in points (metric x 100): mAP@0.5:0.95 for detectors (detections down to
  conf 0.001, as ``edgecv eval``), mIoU for segmenters. With labels (a COCO/YOLO
  dataset) against the labels; without, against the FP32 model (its detections at the
  operating point are the ground truth, its class map is the truth), so FP32 scores 100.
  ``--max-drop`` limits the drop of this score.
- *Fidelity at the operating point* (:mod:`edgecv.quant.fidelity`): with the run's
  ``--conf``/``--iou``, the FP32 detections are the reference and the INT8 detections at
  the same threshold are matched to them (same class, IoU >= 0.5): recall (what the robot
  still sees), precision, F1, mean/worst score change of matched pairs, mean IoU. For
  segmenters: pixel agreement and mIoU against FP32's class map. mAP ranks detections,
  so a detection whose score halves still counts in full there; here it is seen.

**The gate** passes a graph when every limit holds on all held-out images
(:class:`GateLimits`): drop <= ``--max-drop`` (when given), recall >= ``--min-recall``,
precision >= ``--min-precision``, mean score change >= -``--max-score-drop``
(detectors), pixel agreement >= ``--min-pixel-agreement`` (segmenters). Then it checks
it can say so: the 95 % bootstrap interval (over images) of each gated quantity must be
no wider than its tolerance; otherwise the verdict is *inconclusive* with the number of
held-out images that would do (interval width ~ 1/sqrt(n)).

The fallback search:

1. Sensitivity: each layer (:class:`~edgecv.quant.qdq.Placement`) is quantized *alone*
   and the model's raw outputs are compared with FP32's on a few held-out images. The
   error is normalised per output channel (``mean((q - f)^2) / var(f)``, averaged over
   channels), so 600-px box channels and 0-1 score channels weigh the same.
2. Fallback: the ``k`` most sensitive layers go back to float; the smallest ``k`` that
   passes is searched on a subset of the held-out images (doubling, then bisecting),
   confirmed on all of them (``k`` grows until it is), then narrowed on all: the largest
   ``k`` that failed on the subset is tried, then bisection between what fails and ``k``.
3. The answer is never worse than a graph already seen: of every configuration scored on
   all held-out images (plain INT8 included), the passing one with the fewest float
   layers; when none passes, the one closest to passing (largest worst-case margin).

Every trial reuses the same activation statistics; only the graph is rebuilt. A trial
runs each held-out image once (its subset results are the first images of its full
evaluation), and stops as soon as a limit cannot hold whatever its remaining images give
(:meth:`HeldOut.certain_failure`: recall, precision, pixel agreement): the verdict is the
one the complete evaluation would give, so only failing trials are cut short, and the
answer is always measured on every held-out image.
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
from edgecv.quant import fidelity as fid
from edgecv.quant.calib_data import CalibImage

log = logging.getLogger(__name__)

EVAL_CONF = 0.001  # COCO-style: score every detection
EVAL_IOU = 0.6  # as `edgecv eval`
RUN_CONF = 0.25  # the run's defaults (edgecv run / edgecv.load)
RUN_IOU = 0.45
DEFAULT_MIN_RECALL = 0.95
DEFAULT_MIN_PRECISION = 0.95
DEFAULT_MAX_SCORE_DROP = 0.05
DEFAULT_MIN_PIXEL_AGREEMENT = 0.98
MIN_TOLERANCE = 1e-6
MIN_IMAGES = 20  # fewer held-out images: no interval is meaningful, whatever it says
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class GateLimits:
    """The gate's rule (see the module doc). ``max_drop`` None: the mAP/mIoU drop is reported, not gated."""

    max_drop: float | None = None
    min_recall: float = DEFAULT_MIN_RECALL
    min_precision: float = DEFAULT_MIN_PRECISION
    max_score_drop: float = DEFAULT_MAX_SCORE_DROP
    min_pixel_agreement: float = DEFAULT_MIN_PIXEL_AGREEMENT

    def __post_init__(self) -> None:
        if self.max_drop is not None and self.max_drop < 0:
            raise ConfigError(f"--max-drop must be >= 0 points, got {self.max_drop}")
        for name in ("min_recall", "min_precision", "min_pixel_agreement"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        if not 0 <= self.max_score_drop <= 1:
            raise ConfigError(f"--max-score-drop must be in [0, 1], got {self.max_score_drop}")

    def checks(self, task: str) -> list[tuple[str, str, float, float]]:
        """``(quantity, direction, limit, tolerance)``: direction ">=" or "<="; tolerance sizes the interval check."""
        rows: list[tuple[str, str, float, float]] = []
        if self.max_drop is not None:
            rows.append(("drop", "<=", self.max_drop, self.max_drop))
        if task == "detect":
            rows += [
                ("recall", ">=", self.min_recall, 1 - self.min_recall),
                ("precision", ">=", self.min_precision, 1 - self.min_precision),
                ("mean_score_change", ">=", -self.max_score_drop, self.max_score_drop),
            ]
        else:
            rows.append(("pixel_agreement", ">=", self.min_pixel_agreement, 1 - self.min_pixel_agreement))
        return rows

    def to_dict(self, task: str) -> dict[str, Any]:
        return {quantity: f"{direction} {limit:g}" for quantity, direction, limit, _ in self.checks(task)}


@dataclass
class _Image:
    feeds: dict[str, np.ndarray]
    transform: Any
    truth: Any  # labelled: Sample (or a semantic mask); unlabelled: the FP32 operating-point detections / class map
    fp32_op: Any  # FP32 at the operating point (Detections) or FP32's class map


@dataclass
class Evaluation:
    """One graph on (some of) the held-out images: score (points), fidelity vs FP32, per-image parts for the bootstrap."""

    score: float
    fidelity: dict[str, Any]
    images: int
    parts: list[Any] = field(default_factory=list, repr=False)  # per image: DetectionEvaluator / confusion (score)
    matches: Any = field(default=None, repr=False)  # DetectionFidelity / SegmentationFidelity vs FP32
    vs_labels: dict[str, Any] | None = None  # detectors with labels: the operating-point match against the labels
    scored: Scored | None = field(default=None, repr=False)  # the per-image results it came from (prefixes reuse them)

    def values(self, baseline: float) -> dict[str, float]:
        """The gated quantities: ``drop`` (points) and the fidelity ratios."""
        out = {"drop": baseline - self.score}
        for key in ("recall", "precision", "mean_score_change", "pixel_agreement"):
            value = self.fidelity.get(key)
            if key == "mean_score_change" and value is None:
                value = 0.0  # no matched pair: nothing whose score changed (recall says what was lost)
            if value is not None:
                out[key] = float(value)
        return out

    def margin(self, limits: GateLimits, task: str, baseline: float) -> float:
        """The worst check's slack over its tolerance: >= 0 when every limit holds."""
        values = self.values(baseline)
        worst = np.inf
        for quantity, direction, limit, tolerance in limits.checks(task):
            slack = values[quantity] - limit if direction == ">=" else limit - values[quantity]
            worst = min(worst, slack / max(tolerance, 0.01))
        return float(worst)

    def passes(self, limits: GateLimits, task: str, baseline: float) -> bool:
        return self.margin(limits, task, baseline) >= 0


@dataclass
class Scored:
    """One graph's per-image results on the first held-out images, in order, extended on demand.

    Inference is deterministic, so the first images of an evaluation on all held-out images
    are those of an earlier one on a subset: a trial scored on the subset and then on all
    images runs each image once.
    """

    path: Path | None
    parts: list[Any] = field(default_factory=list)  # per image: DetectionEvaluator / confusion (score)
    matches: list[Any] = field(default_factory=list)  # per image: DetectionMatch / SegmentationMatch vs FP32
    label_matches: list[Any] = field(default_factory=list)  # per image, labelled detectors: DetectionMatch vs the labels

    def __len__(self) -> int:
        return len(self.parts)


class HeldOut:
    """Held-out images preprocessed once, the FP32 reference computed once, any graph scored against them.

    Args:
        images: the held-out images (never calibration images).
        reference: path of the FP32 model (metadata, and the truth when unlabelled).
        dataset: the labelled dataset ``images`` come from, or None.
        threads: ONNX Runtime threads for scoring.
        conf / iou: the operating point (the run's score threshold and NMS IoU).
    """

    def __init__(
        self,
        images: Sequence[CalibImage],
        reference: Path,
        *,
        dataset: Any = None,
        threads: int | None = None,
        conf: float = RUN_CONF,
        iou: float = RUN_IOU,
    ) -> None:
        import edgecv

        if not images:
            raise DatasetError("no held-out images to measure accuracy on", hint="raise --holdout or pass --val")
        self.reference = Path(reference)
        self.threads = threads
        self.conf, self.iou = conf, iou
        self.labelled = dataset is not None
        self.dataset = dataset
        self.skipped: list[str] = []
        self.seconds = {"inference": 0.0, "postprocess (NMS at conf 0.001)": 0.0, "postprocess (operating point)": 0.0, "matching": 0.0}
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
            self.images, fp32_results = self._prepare(images, model)
            if self.task == "detect":
                self._reference_counts = np.array([len(image.fp32_op) for image in self.images], np.int64)
            else:
                self._pixel_counts = np.array([np.asarray(image.fp32_op).size for image in self.images], np.int64)
            self.fp32 = self.evaluation(self._fp32_scored(fp32_results))

    @property
    def metric(self) -> str:
        base = "mAP50-95" if self.task == "detect" else "mIoU"
        return base if self.labelled else f"{base} vs FP32"

    @property
    def reference_detections(self) -> int:
        return int(sum(len(image.fp32_op) for image in self.images)) if self.task == "detect" else 0

    def __len__(self) -> int:
        return len(self.images)

    def _run(self, model: Any, operating: Any, feeds: dict[str, np.ndarray], transform: Any) -> tuple[Any, Any]:
        """(eval-threshold result, operating-point result) from one inference."""
        clock = time.perf_counter()
        outputs = model.infer(feeds)
        now = time.perf_counter()
        self.seconds["inference"] += now - clock
        result = model.postprocess(outputs, transform)
        clock, now = now, time.perf_counter()
        if self.task != "detect":
            self.seconds["postprocess (operating point)"] += now - clock
            return result, result.class_map
        self.seconds["postprocess (NMS at conf 0.001)"] += now - clock
        op = operating.postprocess(outputs, transform)
        self.seconds["postprocess (operating point)"] += time.perf_counter() - now
        return result, op

    def _operating(self, model: Any) -> Any:
        if self.task != "detect":
            return None
        from edgecv.api import Detector

        return Detector(model.engine, conf=self.conf, iou=self.iou)

    def _prepare(self, images: Sequence[CalibImage], model: Any) -> tuple[list[_Image], list[tuple[Any, Any]]]:
        prepared, results = [], []
        operating = self._operating(model)
        for image in images:
            frame = image.try_load(self.skipped, what="held-out image")
            if frame is None:
                continue
            feeds, transform = model.preprocess(frame)
            result, op = self._run(model, operating, feeds, transform)
            if self.labelled:
                truth = image.sample
                if self.task == "segment":
                    truth = truth.load_semantic_mask()
            else:  # mAP's pseudo ground truth: FP32's detections above the run threshold, NMS as scored
                truth = result[result.scores >= self.conf] if self.task == "detect" else op
            prepared.append(_Image(feeds, transform, truth, op))
            results.append((result, op))
        if not prepared:
            raise DatasetError("none of the held-out images could be read")
        return prepared, results

    def _fp32_scored(self, results: Sequence[tuple[Any, Any]]) -> Scored:
        scored = Scored(self.reference)
        for image, (result, op) in zip(self.images, results):
            self._score_image(scored, image, result, op)
        return scored

    def evaluate(
        self, path: Path, *, limit: int | None = None, stop: GateLimits | None = None, cache: Scored | None = None
    ) -> Evaluation | None:
        """The model at ``path`` on the first ``limit`` held-out images (all when None).

        Args:
            stop: stop as soon as these limits are certain to fail on those images, whatever the
                images not yet seen give (:meth:`certain_failure`); None is then returned.
                The verdict is the one a complete evaluation would give: a graph that can
                still pass is always evaluated on every image.
            cache: the graph's per-image results so far (:class:`Scored` of the same ``path``):
                images already scored are not run again, new ones are added to it.
        """
        import edgecv

        count = len(self.images) if not limit else min(limit, len(self.images))
        scored = cache if cache is not None else Scored(path)
        if len(scored) < count:
            with edgecv.load(path, conf=EVAL_CONF, iou=EVAL_IOU, threads=self.threads) as model:
                operating = self._operating(model)
                while len(scored) < count:
                    if stop is not None and self.certain_failure(scored, count, stop):
                        return None
                    image = self.images[len(scored)]
                    result, op = self._run(model, operating, image.feeds, image.transform)
                    self._score_image(scored, image, result, op)
        if stop is not None and self.certain_failure(scored, count, stop):
            return None  # already known to fail (the cache came from an earlier, stopped evaluation)
        return self.evaluation(scored, count)

    def score(self, path: Path, *, limit: int | None = None) -> float:
        evaluation = self.evaluate(path, limit=limit)
        assert evaluation is not None
        return evaluation.score

    def fp32_on(self, limit: int | None) -> Evaluation:
        """FP32's own evaluation on the first ``limit`` images (no inference: cached)."""
        if not limit or limit >= len(self.images):
            return self.fp32
        assert self.fp32.scored is not None
        return self.evaluation(self.fp32.scored, limit)

    def certain_failure(self, scored: Scored, count: int, limits: GateLimits) -> bool:
        """Whether ``limits`` fail on the first ``count`` images for any results of the images not yet in ``scored``.

        Bounds that hold whatever the unseen images give (each unseen image at best agrees
        with FP32 exactly): recall <= (matched + unseen reference detections) / reference
        detections; precision <= (matched + unseen reference detections) / (candidates +
        unseen reference detections), as unmatched candidates only lower it; pixel agreement
        <= (agreeing + unseen pixels) / pixels. The mAP drop and the score change have no
        such bound here and never stop an evaluation early.
        """
        seen = min(len(scored), count)
        if self.task == "detect":
            ref = self._reference_counts
            total, unseen = float(ref[:count].sum()), float(ref[seen:count].sum())
            hit = float(sum(m.matched for m in scored.matches[:seen]))
            cand = float(sum(m.candidate for m in scored.matches[:seen]))
            if total > 0 and (hit + unseen) / total < limits.min_recall:
                return True
            return cand + unseen > 0 and (hit + unseen) / (cand + unseen) < limits.min_precision
        unseen = float(self._pixel_counts[seen:count].sum())
        total = float(sum(m.confusion.sum() for m in scored.matches[:seen])) + unseen
        agree = float(sum(np.trace(m.confusion) for m in scored.matches[:seen]))
        return total > 0 and (agree + unseen) / total < limits.min_pixel_agreement

    def _score_image(self, scored: Scored, image: _Image, result: Any, op: Any) -> None:
        """Add one image's per-image parts (score) and matches (fidelity) to ``scored``."""
        from edgecv.bench.accuracy import DetectionEvaluator

        clock = time.perf_counter()
        if self.task == "detect":
            evaluator = DetectionEvaluator(len(self.names), names=self.names)
            if self.labelled:
                sample = image.truth
                evaluator.add(0, sample.boxes, sample.class_ids, result, gt_iscrowd=sample.iscrowd)
            else:
                ref = image.truth
                evaluator.add(0, ref.xyxy, ref.class_ids, result)
            scored.parts.append(evaluator)
            ref = image.fp32_op
            scored.matches.append(fid.match_detections(ref.xyxy, ref.scores, ref.class_ids, op.xyxy, op.scores, op.class_ids))
            if self.labelled:
                truth = image.truth
                crowd = np.asarray(truth.iscrowd, bool) if truth.iscrowd is not None else np.zeros(len(truth.class_ids), bool)
                scored.label_matches.append(fid.match_detections(truth.boxes[~crowd], None, truth.class_ids[~crowd], op.xyxy, op.scores, op.class_ids))
        else:
            k = len(self.names)
            scored.parts.append(fid.confusion(image.truth, op, k).confusion)
            scored.matches.append(fid.confusion(image.fp32_op, op, k, None))
        self.seconds["matching"] += time.perf_counter() - clock

    def evaluation(self, scored: Scored, count: int | None = None) -> Evaluation:
        """The :class:`Evaluation` of the first ``count`` images of ``scored`` (all when None)."""
        clock = time.perf_counter()
        n = len(scored) if count is None else min(count, len(scored))
        parts = scored.parts[:n]
        vs_labels = None
        if self.task == "detect":
            matches: Any = fid.DetectionFidelity(scored.matches[:n])
            if self.labelled:
                vs_labels = fid.DetectionFidelity(scored.label_matches[:n]).summary()
        else:
            matches = fid.SegmentationFidelity(scored.matches[:n])
        score = self.score_of(parts, np.arange(len(parts)))
        self.seconds["matching"] += time.perf_counter() - clock
        return Evaluation(score, matches.summary(), n, parts, matches, vs_labels, scored)

    def score_of(self, parts: Sequence[Any], idx: np.ndarray) -> float:
        """Score in points of the images ``idx`` (may repeat) from their per-image parts."""
        if self.task == "detect":
            from edgecv.bench.accuracy import DetectionEvaluator

            value = DetectionEvaluator.combine([parts[i] for i in idx]).compute().map
            return 100.0 * max(value, 0.0) if value > -1 else 100.0  # no ground truth at all: nothing to disagree on
        miou, _ = fid.miou_of(np.sum([parts[i] for i in idx], axis=0))
        return 100.0 * float(miou)

    def raw_outputs(self, path: Path, count: int) -> list[np.ndarray]:
        """The model's raw outputs (first output) on the first ``count`` images, for sensitivity."""
        import edgecv

        with edgecv.load(path, conf=EVAL_CONF, iou=EVAL_IOU, threads=self.threads) as model:
            return [next(iter(model.infer(image.feeds).values())) for image in self.images[:count]]

    def uncertainty(self, evaluation: Evaluation, limits: GateLimits, *, samples: int = fid.BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
        """95 % bootstrap intervals (over images, paired with FP32) of the drop and the fidelity figures.

        Returns ``{"intervals": {quantity: [low, high]}, "images": n, "reference_detections": ..,
        "sufficient": bool, "short": [{quantity, width, tolerance, images_needed}]}``.
        """
        n = evaluation.images
        idx = fid.resample_indices(n, samples, seed)
        map_samples = min(samples, 200) if self.task == "detect" else samples  # mAP replays cost ~10 ms each
        drops = np.array([self.score_of(self.fp32.parts, row) - self.score_of(evaluation.parts, row) for row in idx[:map_samples]])
        intervals = {"drop": fid.bootstrap_interval(drops)}
        for key, values in evaluation.matches.resampled(idx).items():
            intervals[key] = fid.bootstrap_interval(values)
        short = []
        if n < MIN_IMAGES:
            short.append({"quantity": "images", "width": None, "tolerance": None, "images_needed": MIN_IMAGES})
        # A bootstrap of all-agreeing images has zero width: with k reference (candidate) detections all
        # matched, the 95 % bound on the share missed is still 3/k (the rule of three).
        counts = {"recall": evaluation.fidelity.get("reference"), "precision": evaluation.fidelity.get("candidate")}
        for quantity, _direction, _limit, tolerance in limits.checks(self.task):
            low, high = intervals[quantity]
            width = high - low
            needed = fid.images_needed(n, width, tolerance) if np.isfinite(width) else n
            count = counts.get(quantity)
            if count is not None and (not count or 3 / count > width):
                width = 3 / max(count, 1)
                needed = -1 if tolerance <= 0 else int(np.ceil(n * 3 / tolerance / max(count, 1)))
            if np.isfinite(width) and width > tolerance + MIN_TOLERANCE:
                short.append({"quantity": quantity, "width": round(width, 4), "tolerance": tolerance, "images_needed": needed})
        return {
            "images": n,
            "reference_detections": self.reference_detections if self.task == "detect" else None,
            "confidence": fid.CONFIDENCE,
            "intervals": {k: [round(v[0], 4), round(v[1], 4)] for k, v in intervals.items()},
            "sufficient": not short,
            "short": short,
        }


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
    subset: Evaluation | None = None
    full: Evaluation | None = None
    subset_pass: bool | None = None
    full_pass: bool | None = None
    margin: float | None = None  # on all held-out images
    scored: Scored | None = field(default=None, repr=False)  # its per-image results so far
    stopped_after: int | None = None  # its last evaluation stopped after this many images: certain to fail

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        row: dict[str, Any] = {"kept_float_layers": self.kept, "subset_score": r(self.subset and self.subset.score)}
        row["full_score"] = r(self.full and self.full.score)
        if self.full is not None:
            row |= {k: r(self.full.fidelity.get(k)) for k in ("recall", "precision", "mean_score_change", "pixel_agreement") if k in self.full.fidelity}
        row["passed"] = self.full_pass if self.full_pass is not None else self.subset_pass
        if self.stopped_after is not None:
            row["stopped_after_images"] = self.stopped_after
        return row


@dataclass
class GateResult:
    """What the gate chose and how.

    Attributes:
        kept_layers: layer labels returned to float, most sensitive first.
        kept_nodes: their node names (what the quantizer excludes).
        evaluation: the chosen graph on all held-out images; ``score`` its score (points).
        passed: every limit holds on all held-out images (see :class:`GateLimits`).
        sensitivity: ``{layer: output error when quantized alone}``, most sensitive first.
        trials: every configuration scored.
    """

    kept_layers: list[str]
    kept_nodes: list[str]
    evaluation: Evaluation
    passed: bool
    sensitivity: dict[str, float] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.evaluation.score

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept_float_layers": self.kept_layers,
            "kept_float_nodes": len(self.kept_nodes),
            "score": round(self.score, 3),
            "passed": self.passed,
            "sensitivity": {k: float(f"{v:.4g}") for k, v in self.sensitivity.items()},
            "trials": [t.to_dict() for t in self.trials],
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def run_gate(
    build: Callable[[Sequence[str]], Path],
    layers: dict[str, tuple[str, ...]],
    held: HeldOut,
    *,
    limits: GateLimits,
    subset: int,
    plain: Evaluation | None = None,
    sensitivity_images: int = 8,
    progress: Progress | None = None,
) -> GateResult:
    """Return layers to float, most sensitive first, until every limit holds (see the module doc).

    Args:
        build: ``build(kept_float_node_names) -> path`` of the INT8 model with those nodes float.
        layers: ``{label: node names}`` the quantizer quantizes (the fallback units).
        held: the held-out images (with the FP32 reference).
        limits: the gate's rule.
        subset: images in the quick subset.
        plain: plain INT8 (nothing float) on all held-out images, when already measured (else measured here).
        sensitivity_images: images for the per-layer sensitivity.
        progress: ``progress(done, total)`` over the sensitivity pass.
    """
    start = time.perf_counter()
    seconds = {"sensitivity": 0.0, "trials": 0.0}
    task = held.task
    baseline, baseline_subset = held.fp32.score, held.fp32_on(subset).score
    labels = list(layers)
    everything = [n for names in layers.values() for n in names]
    trials: dict[int, Trial] = {}
    if plain is None:  # plain INT8 on all images: the search's answer is never worse than it
        plain = held.evaluate(build([]))
        assert plain is not None
    trials[0] = Trial(0, full=plain, full_pass=plain.passes(limits, task, baseline), margin=plain.margin(limits, task, baseline), scored=plain.scored)
    if trials[0].full_pass:
        return GateResult([], [], plain, True, trials=[trials[0]], seconds=seconds)
    reference = held.raw_outputs(held.reference, sensitivity_images)  # the FP32 model's outputs
    errors: dict[str, float] = {}
    for done, label in enumerate(labels, 1):
        mine = set(layers[label])
        errors[label] = output_error(held.raw_outputs(build([n for n in everything if n not in mine]), sensitivity_images), reference)
        if progress:
            progress(done, len(labels))
    order = sorted(labels, key=lambda k: -errors[k])
    sensitivity = {k: errors[k] for k in order}
    seconds["sensitivity"] = time.perf_counter() - start

    def nodes_of(k: int) -> list[str]:
        return [n for label in order[:k] for n in layers[label]]

    def within(k: int, full: bool) -> bool:
        trial = trials.setdefault(k, Trial(k))
        if full and trial.full_pass is not None:
            return trial.full_pass
        if not full and trial.subset_pass is not None:
            return trial.subset_pass
        if trial.scored is None:
            trial.scored = Scored(build(nodes_of(k)))
        path = trial.scored.path
        assert path is not None
        # Images already run for this graph are reused; an evaluation stops once the limits
        # cannot hold on its images whatever the rest give (the verdict it would reach anyway).
        if full:
            evaluation = held.evaluate(path, stop=limits, cache=trial.scored)
            if evaluation is None:
                trial.full_pass, trial.stopped_after = False, len(trial.scored)
                return False
            trial.full = evaluation
            trial.margin = evaluation.margin(limits, task, baseline)
            trial.full_pass = trial.margin >= 0
            return trial.full_pass
        evaluation = held.evaluate(path, limit=subset, stop=limits, cache=trial.scored)
        if evaluation is None:
            trial.subset_pass, trial.stopped_after = False, min(len(trial.scored), subset)
            return False
        trial.subset = evaluation
        trial.subset_pass = evaluation.passes(limits, task, baseline_subset)
        return trial.subset_pass

    clock = time.perf_counter()
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
    # The subset is noisy where the curve is flat and can overshoot: check the subset's edge (the
    # largest k that failed on it) on all held-out images, then bisect on all of them between the
    # largest k known to fail there (plain INT8, k = 0, did) and k. Where subset and full agree,
    # the edge fails and nothing is left to bisect.
    low = max((t.kept for t in trials.values() if t.full_pass is False and t.kept < k), default=0)
    edge = max((t.kept for t in trials.values() if t.subset_pass is False and low < t.kept < k), default=None)
    if edge is not None and trials[k].full_pass:
        if within(edge, full=True):
            k = edge
        else:
            low = edge
    while k - low > 1 and trials[k].full_pass:
        mid = (low + k) // 2
        if within(mid, full=True):
            k = mid
        else:
            low = mid
    seconds["trials"] = time.perf_counter() - clock
    final = best_trial(trials.values())
    assert final.full is not None
    result = GateResult(
        kept_layers=order[: final.kept],
        kept_nodes=nodes_of(final.kept),
        evaluation=final.full,
        passed=bool(final.full_pass),
        sensitivity=sensitivity,
        trials=sorted(trials.values(), key=lambda t: t.kept),
        seconds=seconds,
    )
    log.info("gate: %d of %d layers kept float, %.2f points (FP32 %.2f) in %.1f s", final.kept, n, final.full.score, baseline, time.perf_counter() - start)
    return result


def best_trial(trials: Any) -> Trial:
    """Never worse than one seen: of the trials scored on all images, the passing one with the fewest
    float layers, else the one with the largest margin (ties: fewer float layers)."""
    full = [t for t in trials if t.full is not None and t.margin is not None]
    if not full:
        raise ValueError("no trial was scored on all held-out images")
    passing = [t for t in full if t.full_pass]
    if passing:
        return min(passing, key=lambda t: (t.kept, -t.margin))
    return max(full, key=lambda t: (t.margin, -t.kept))


class ModelBuilder:
    """Writes INT8 variants of one model to a scratch folder, by kept-float node set (memoised)."""

    def __init__(self, build_graph: Callable[[Sequence[str]], Any], meta: ModelMeta) -> None:
        self._build_graph = build_graph
        self._meta = meta
        self._dir = tempfile.TemporaryDirectory(prefix="edgecv-gate-")
        self._paths: dict[frozenset[str], Path] = {}
        self.seconds = 0.0  # building and saving graphs
        self.builds = 0

    def __call__(self, keep_float: Sequence[str]) -> Path:
        key = frozenset(keep_float)
        path = self._paths.get(key)
        if path is None:
            clock = time.perf_counter()
            import onnx

            from edgecv.graph.onnx_graph import set_metadata

            model = set_metadata(self._build_graph(sorted(key)), self._meta)
            path = Path(self._dir.name) / f"trial{len(self._paths)}.onnx"
            onnx.save_model(model, str(path))
            self._paths[key] = path
            self.seconds += time.perf_counter() - clock
            self.builds += 1
        return path

    def close(self) -> None:
        self._dir.cleanup()
