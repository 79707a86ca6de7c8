"""The Python API: ``edgecv.load(path)`` -> a callable Detector or Segmenter.

    import edgecv
    model = edgecv.load("models/shapes-det.onnx", conf=0.3)
    detections = model(frame)            # frame: BGR uint8 (H, W, 3), e.g. from cv2
    for box, name, score in zip(detections.xyxy, detections.class_names, detections.scores): ...

Threads: on ONNX Runtime one model may be called from several threads at once
(``InferenceSession.run`` is thread-safe and the model keeps no per-call state);
the thresholds (``conf``, ``iou``, ``classes``) are shared, so set them before the
threads start. On TensorRT each thread gets its own context, stream and buffers, and a
frame's ``preprocess`` and ``infer`` belong on the same thread (the GPU preprocessing
runs on that thread's stream). For the highest throughput on a Jetson, run one model
in one worker thread and feed it the newest frame (what ``edgecv run`` does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.cuda.preprocess import on_device
from edgecv.engine.base import BaseEngine
from edgecv.engine.registry import load_engine
from edgecv.errors import ConfigError
from edgecv.results import Detections, Result, Segmentation
from edgecv.track import ByteTrack, TrackConfig
from edgecv.vision.letterbox import LetterboxTransform, preprocess

log = logging.getLogger(__name__)


class Model:
    """A loaded model: preprocess -> infer -> postprocess, each callable on its own (the run loop times them)."""

    def __init__(self, engine: BaseEngine) -> None:
        self.engine = engine
        self.meta: ModelMeta = engine.meta
        self._input_name = engine.inputs[0].name
        # On TensorRT the frame is letterboxed and normalized by one CUDA kernel (edgecv.cuda.preprocess)
        # when numba is installed; set False to preprocess on the CPU (e.g. to batch frames on the host).
        # The kernel runs on the calling thread's engine stream, so preprocess and infer of a frame
        # belong on the same thread (edgecv run does both on its inference thread).
        self.gpu_preprocess = (
            engine.backend == "tensorrt" and not self.meta.preprocess_in_graph and engine.inputs[0].dtype == np.float32 and _has_numba_cuda()
        )
        self._local = threading.local()

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def names(self) -> tuple[str, ...]:
        return self.meta.names

    @property
    def path(self) -> Path:
        return self.engine.path

    def preprocess(self, frame: np.ndarray) -> tuple[dict[str, np.ndarray], LetterboxTransform]:
        """BGR uint8 (H, W, 3) -> model feeds and the letterbox transform (feeds stay on the GPU with ``gpu_preprocess``)."""
        if self.gpu_preprocess:
            tensor, transform = self._gpu_preprocessor()(frame)
            return {self._input_name: tensor}, transform
        tensor, transform = preprocess(frame, self.meta)
        return {self._input_name: tensor}, transform

    def _gpu_preprocessor(self) -> Any:
        """The calling thread's :class:`~edgecv.cuda.preprocess.GpuPreprocessor`, on its engine stream."""
        pre = getattr(self._local, "gpu_pre", None)
        if pre is None:
            from edgecv.cuda.preprocess import GpuPreprocessor

            engine: Any = self.engine
            pre = self._local.gpu_pre = GpuPreprocessor(self.meta, stream=engine.stream, device=getattr(engine, "device", None))
        return pre

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any(on_device(v) for v in feeds.values()):
            return self.engine.infer_on_device(feeds)  # type: ignore[attr-defined]
        return self.engine.infer(feeds)

    @property
    def last_batch_calls(self) -> int:
        """Engine calls the calling thread's last :meth:`infer_batch` took (per thread: batches may run on several)."""
        return int(getattr(self._local, "batch_calls", 0))

    @property
    def batchable(self) -> bool:
        """True when several preprocessed frames can go through one engine call (dynamic batch dimension).

        Not with GPU preprocessing (each frame's feeds live on the GPU) nor for torchvision layouts,
        whose outputs are not batched.
        """
        dims = [spec.shape[0] if spec.shape else 1 for spec in (*self.engine.inputs, *self.engine.outputs)]
        return (
            all(d == -1 for d in dims) and not self.gpu_preprocess and self.meta.output_format != "tv_detect"
        )

    @property
    def max_batch(self) -> int | None:
        """The most frames one engine call takes: 1 when not :attr:`batchable`; None (no limit) on ONNX
        Runtime; a TensorRT engine's profile maximum, from the model's dynamic batch range (as build-engine)."""
        if not self.batchable:
            return 1
        if self.engine.backend == "tensorrt":
            return int(self.meta.extra.get("dynamic_batch", {}).get("max", 16))
        return None

    def infer_batch(self, feeds: Sequence[dict[str, np.ndarray]], max_batch: int | None = None) -> list[dict[str, np.ndarray]]:
        """Infer several preprocessed frames (from :meth:`preprocess`) in as few engine calls as possible.

        Frames whose input tensors have the same shape are stacked along the batch dimension
        into one call (at most ``max_batch`` frames each, default :attr:`max_batch`) and the outputs are split back, one
        ``(1, ...)`` slice per frame, so :meth:`postprocess` reads each like a single frame's.
        Input shapes differ only for models with a dynamic input size fed frames of different
        aspect ratios (the letterbox is per frame); those go in one call per shape, because padding
        them to one shape would change their results near the padded border. A model whose batch
        dimension is fixed (see :attr:`batchable`) infers frame by frame. :attr:`last_batch_calls`
        tells how many engine calls the last batch took.

        Returns:
            One outputs dict per frame, in order (arrays are copies the engine will not reuse).
        """
        n = len(feeds)
        if n <= 1 or not self.batchable:
            self._local.batch_calls = n
            return [self.infer(f) for f in feeds]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, f in enumerate(feeds):
            groups.setdefault(tuple((k, v.shape) for k, v in sorted(f.items())), []).append(i)
        limit = max_batch or self.max_batch or n
        out: list[dict[str, np.ndarray]] = [{}] * n
        calls = 0
        for members in groups.values():
            for start in range(0, len(members), limit):
                chunk = members[start : start + limit]
                stacked = {k: np.concatenate([feeds[i][k] for i in chunk]) for k in feeds[chunk[0]]}
                outputs = self.infer(stacked)
                calls += 1
                for j, i in enumerate(chunk):
                    out[i] = {k: np.array(v[j : j + 1]) for k, v in outputs.items()}
        self._local.batch_calls = calls
        return out

    def stage_ms(self, pre_ms: float, infer_ms: float) -> tuple[float, float]:
        """The calling thread's last ``(pre, infer)`` wall times with the GPU preprocessing counted in ``pre``.

        The kernel (and upload) run asynchronously on the engine's stream: their GPU time is
        spent while ``infer`` waits for that stream. It is measured with CUDA events and moved
        from ``infer`` to ``pre``; the sum is unchanged. Without GPU preprocessing the times are returned as given.
        """
        pre = getattr(self._local, "gpu_pre", None) if self.gpu_preprocess else None
        gpu = pre.gpu_ms if pre is not None else None
        if gpu is None:
            return pre_ms, infer_ms
        moved = min(gpu, infer_ms)
        return pre_ms + moved, infer_ms - moved

    def postprocess(self, outputs: dict[str, np.ndarray], transform: LetterboxTransform) -> Result:
        raise NotImplementedError

    def __call__(self, frame: np.ndarray) -> Result:
        feeds, transform = self.preprocess(frame)
        return self.postprocess(self.infer(feeds), transform)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name}, {self.meta.num_classes} classes, {self.engine.backend})"


def _check_size_fits(engine: BaseEngine, asked: tuple[int, ...] | None) -> None:
    """The size frames are letterboxed to fits what the engine accepts (a TensorRT profile), checked
    at load rather than at the first frame. Minimal padding may make a frame smaller than the size
    in one dimension; that lower bound is the profile's own (a quarter of the size, by default)."""
    import shlex

    accepted = engine.input_hw_range()
    if accepted is None:
        return
    (lo_h, lo_w), (hi_h, hi_w) = accepted
    h, w = engine.meta.input_size
    if lo_h <= h <= hi_h and lo_w <= w <= hi_w:
        return
    built = f"{hi_h},{hi_w}" if (lo_h, lo_w) == (hi_h, hi_w) else f"{lo_h},{lo_w} to {hi_h},{hi_w}"
    manifest = getattr(engine, "manifest", None)
    words = shlex.split((manifest or {}).get("build_command") or f"edgecv build-engine MODEL.onnx -o {engine.path}")
    for flag in ("--imgsz", "--square"):  # the same build at the new size
        while flag in words:
            i = words.index(flag)
            del words[i : i + (2 if flag == "--imgsz" else 1)]
    rebuild = shlex.join([*words, "--imgsz", f"{h},{w}", *(["--square"] if engine.meta.square else [])])
    raise ConfigError(
        f"{engine.path.name} accepts inputs of {built} (height,width); " + (f"--imgsz {h},{w}" if asked else f"its model's size {h},{w}") + " is outside that",
        hint=(f"leave out --imgsz (or pass --imgsz {hi_h},{hi_w}), or rebuild the engine: {rebuild}" if asked
              else f"pass --imgsz {hi_h},{hi_w}, or rebuild the engine: {rebuild}"),
    )


def _has_numba_cuda() -> bool:
    from edgecv._optional import is_available

    if not is_available("numba"):
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver, no GPU
        return False


class Detector(Model):
    """Returns :class:`Detections` in original-image pixels.

    Args:
        conf: minimum score; iou: NMS IoU threshold; classes: keep only these class ids;
        max_det: at most this many detections per image; agnostic: class-agnostic NMS.

    ``tracker`` (set by ``load(..., track=True)``): a :class:`~edgecv.track.ByteTrack` that
    calling the model steps, so ``model(frame)`` returns detections with ``tracker_id``.
    One tracker follows one stream: call it on consecutive frames of one camera only.
    ``postprocess`` never tracks (a loop over several streams keeps a tracker per stream).
    """

    tracker: ByteTrack | None = None

    def __init__(
        self,
        engine: BaseEngine,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
    ) -> None:
        super().__init__(engine)
        if not 0 <= conf <= 1 or not 0 <= iou <= 1:
            raise ConfigError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        if classes is not None:
            bad = [c for c in classes if not 0 <= c < self.meta.num_classes]
            if bad:
                raise ConfigError(
                    f"class ids {bad} out of range for a model with {self.meta.num_classes} classes",
                    hint=f"classes: {', '.join(f'{i}={n}' for i, n in enumerate(self.names))}",
                )
        self.conf, self.iou, self.classes, self.max_det, self.agnostic = conf, iou, classes, max_det, agnostic
        graph_nms = self.meta.extra.get("nms") if self.meta.output_format == "nms" else None
        if graph_nms:
            if agnostic:
                raise ConfigError("class-agnostic NMS was asked for, but this model's NMS is in the graph (class-aware)")
            log.info(
                "%s has NMS in the graph: IoU %s, score > max(%s, %s), at most %s detections",
                engine.path.name, graph_nms.get("iou"), conf, graph_nms.get("conf"), min(max_det, graph_nms.get("max_det", max_det)),
            )

    def postprocess(self, outputs: dict[str, np.ndarray], transform: LetterboxTransform) -> Detections:
        from edgecv.vision.decode import decode_nms_outputs, decode_yolov8, yolov5_to_yolov8, yolox_to_yolov8

        if self.meta.output_format == "nms":  # decoded and suppressed in the graph: only thresholds remain
            xyxy, scores, class_ids, rows = decode_nms_outputs(
                outputs, conf=self.conf, classes=self.classes, max_det=self.max_det, return_rows=True
            )
            boxes = transform.boxes_to_src(xyxy)
            if "mask_coefs" not in outputs:
                return Detections(boxes, scores, class_ids, self.names)
            from edgecv.vision.masks import render_masks

            coefs = np.asarray(outputs["mask_coefs"])[0, rows]
            masks = render_masks(coefs, np.asarray(outputs["protos"])[0], boxes, transform)
            return Detections(boxes, scores, class_ids, self.names, masks=masks)
        if self.meta.output_format == "tv_detect":  # torchvision: decoded and suppressed in the graph
            values = list(outputs.values())
            boxes, scores, labels = (np.asarray(a) for a in values[:3])
            # label 0 is torchvision's background (never in ``names``): label k is class id k - 1
            class_ids = labels.astype(np.int64).reshape(-1) - 1
            scores = scores.astype(np.float32).reshape(-1)
            keep = (scores > self.conf) & (class_ids >= 0)
            if self.classes is not None:
                keep &= np.isin(class_ids, self.classes)
            idx = np.flatnonzero(keep)
            idx = idx[np.argsort(-scores[idx], kind="stable")][: self.max_det]
            xyxy = transform.boxes_to_src(boxes.reshape(-1, 4)[idx].astype(np.float32))
            masks = _masks_to_src(np.asarray(values[3])[idx, 0], transform) if len(values) > 3 else None
            return Detections(xyxy, scores[idx], class_ids[idx].astype(np.int32), self.names, masks)
        if self.meta.output_format == "yolov8_seg":  # boxes + mask coefficients, and mask prototypes
            from edgecv.vision.masks import decode_yolov8_seg

            by_rank = {np.ndim(a): a for a in outputs.values()}
            if sorted(by_rank) != [3, 4] or len(outputs) != 2:
                shapes = {k: np.shape(v) for k, v in outputs.items()}
                raise ValueError(f"a yolov8_seg model must give a (B, C, A) and a (B, 32, h, w) output, got {shapes}")
            xyxy, scores, class_ids, masks = decode_yolov8_seg(
                by_rank[3], by_rank[4], self.conf, self.iou, transform,
                classes=self.classes, max_det=self.max_det, agnostic=self.agnostic,
            )
            return Detections(xyxy, scores, class_ids, self.names, masks=masks)
        raw = next(iter(outputs.values()))
        if self.meta.output_format == "yolov5":
            raw = yolov5_to_yolov8(raw)
        elif self.meta.output_format == "yolox":
            raw = yolox_to_yolov8(raw, transform.dst_size)
        xyxy, scores, class_ids = decode_yolov8(
            raw, self.conf, self.iou, classes=self.classes, max_det=self.max_det, agnostic=self.agnostic
        )
        return Detections(transform.boxes_to_src(xyxy), scores, class_ids, self.names)

    def __call__(self, frame: np.ndarray) -> Detections:
        detections: Detections = super().__call__(frame)  # type: ignore[assignment]
        return detections if self.tracker is None else self.tracker.update(detections)


def _masks_to_src(probs: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """(K, h, w) mask probabilities at the model input -> (K, H, W) bool at the original image size."""
    import cv2

    y0, y1, x0, x1 = transform.content_window()
    h, w = transform.src_size
    out = np.zeros((len(probs), h, w), bool)
    for k, prob in enumerate(probs):
        out[k] = cv2.resize(np.ascontiguousarray(prob[y0:y1, x0:x1], np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    return out


class Segmenter(Model):
    """Returns :class:`Segmentation` (a class per pixel) at the original image size.

    One-channel models (``seg_binary``: a probability or logit map) take ``mask_threshold``
    (a probability, default 0.5); with ``regions`` they return the connected foreground
    regions as :class:`Detections` (boxes, mean probability, masks) instead, what a text or
    blob detector's user wants; ``min_region_area`` (pixels) drops specks.
    """

    def __init__(
        self, engine: BaseEngine, *, mask_threshold: float | None = None, regions: bool = False, min_region_area: int = 1
    ) -> None:
        super().__init__(engine)
        binary = self.meta.output_format == "seg_binary"
        if not binary and (mask_threshold is not None or regions):
            raise ConfigError(
                f"mask_threshold and regions apply to one-channel segmenters; {engine.path.name} has {self.meta.num_classes} class maps",
                hint="leave out --mask-threshold / --regions",
            )
        if mask_threshold is not None and not 0 < mask_threshold < 1:
            raise ConfigError(f"mask_threshold must be in (0, 1), got {mask_threshold}", hint="a probability, e.g. 0.3")
        self.mask_threshold = 0.5 if mask_threshold is None else float(mask_threshold)
        self.regions, self.min_region_area = regions, int(min_region_area)

    def postprocess(self, outputs: dict[str, np.ndarray], transform: LetterboxTransform) -> Segmentation | Detections:
        from edgecv.vision.segment import binary_postprocess, mask_regions, segment_postprocess

        raw = next(iter(outputs.values()))
        if self.meta.output_format != "seg_binary":
            class_map, scores = segment_postprocess(raw, transform)
            return Segmentation(class_map, self.names, scores)
        kind = self.meta.extra.get("binary_map", "logit")
        class_map, prob = binary_postprocess(raw, transform, kind=kind, threshold=self.mask_threshold)
        if self.regions:
            xyxy, scores, masks = mask_regions(class_map, prob, min_area=self.min_region_area)
            return Detections(xyxy, scores, np.zeros(len(scores), np.int32), self.names[1:], masks=masks)
        return Segmentation(class_map, self.names, np.where(class_map == 1, prob, 1 - prob).astype(np.float32))


def load(
    path: str | Path,
    *,
    backend: str = "auto",
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    task: str | None = None,
    names: Sequence[str] | None = None,
    triton: str | None = None,
    track: bool | TrackConfig = False,
    imgsz: int | Sequence[int] | None = None,
    square: bool = False,
    mask_threshold: float | None = None,
    regions: bool = False,
    **engine_options: Any,
) -> Detector | Segmenter:
    """Load ``path`` (.onnx or .engine) and return a Detector or Segmenter, chosen by the model's task.

    ``task``/``names`` describe ONNX files edgecv did not write; ``engine_options`` go
    to the backend (ONNX Runtime: ``providers``, ``threads``). ``imgsz`` (one number or
    (h, w)) runs a model with dynamic height/width at that size (a multiple of its
    stride; a static model accepts only its own size); frames are padded only up to
    the next stride multiple unless ``square`` (pad to the full size). ``mask_threshold``
    and ``regions`` are for one-channel segmenters (see :class:`Segmenter`).
    With ``triton`` (a server URL, ``http://host:8000`` or ``grpc://host:8001``) the network
    runs on that Triton server and ``path`` names the model there (a deployed file's stem,
    or the name itself); pre- and postprocessing stay local (see :mod:`edgecv.engine.triton`).
    ``track`` (True or a :class:`~edgecv.track.TrackConfig`) gives a detector a ByteTrack
    tracker that each call steps, for one stream of consecutive frames.

    Raises:
        ConfigError: ``imgsz`` does not fit the model (message says its size), or options
            that do not apply to the model's task.
    """
    from edgecv.artifact import with_input_size

    if not isinstance(track, (bool, TrackConfig)):
        raise ConfigError(f"track must be True, False or a TrackConfig, got {type(track).__name__}", hint="edgecv.load(path, track=True)")
    size = None if imgsz is None else ((int(imgsz),) * 2 if isinstance(imgsz, (int, np.integer)) else tuple(int(v) for v in imgsz))
    if size is not None and len(size) != 2:
        raise ConfigError(f"imgsz takes one number or (height, width), got {imgsz!r}")
    if triton is not None:
        if backend not in ("auto", "triton"):
            raise ConfigError(f"triton= runs the model on a server; backend={backend!r} conflicts with it", hint="drop backend")
        from edgecv.engine.triton import TritonEngine

        engine: BaseEngine = TritonEngine(path, url=triton, task=task, names=names, **engine_options)
    else:
        engine = load_engine(path, backend, task=task, names=names, **engine_options)
    try:  # a model that cannot be used as asked is closed before the error leaves
        engine.meta = with_input_size(engine.meta, size, square=square, model=Path(path).name)
        _check_size_fits(engine, size)
        if engine.meta.task == "detect":
            if mask_threshold is not None or regions:
                raise ConfigError(f"mask_threshold and regions apply to one-channel segmenters; {Path(path).name} is a detector")
            detector = Detector(engine, conf=conf, iou=iou, classes=classes, max_det=max_det)
            if track is not False:
                detector.tracker = ByteTrack(track if isinstance(track, TrackConfig) else None)
            return detector
        if track is not False:
            raise ConfigError(f"track=True needs a detection model; {Path(path).name} is a {engine.meta.task} model", hint="drop track=True")
        return Segmenter(engine, mask_threshold=mask_threshold, regions=regions)
    except Exception:
        engine.close()
        raise
