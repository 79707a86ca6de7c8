"""Decode raw detector outputs into boxes, scores and class ids (model-input pixels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecv.vision.nms import nms


def decode_yolov8(
    output: np.ndarray,
    conf: float,
    iou: float,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    agnostic: bool = False,
    pre_nms_topk: int = 30000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image of the Ultralytics YOLOv8 raw layout, as Ultralytics does for single-label NMS.

    Steps: best class per anchor; keep anchors whose best score is > ``conf``
    (the argmax runs only on those); keep those whose best class is in
    ``classes`` (an anchor whose best class is filtered out is dropped, even if
    another allowed class scores above ``conf``, as in Ultralytics); keep the
    ``pre_nms_topk`` highest scores; class-aware NMS (:func:`edgecv.vision.nms.nms`,
    torchvision semantics) unless ``agnostic``; at most ``max_det`` boxes.

    Args:
        output: (B, 4 + nc, A) or (4 + nc, A); rows cx, cy, w, h in model-input
            pixels, then nc class scores already passed through a sigmoid. Only
            batch index 0 is decoded. Other dtypes (float16) are read as float32.
            The transposed (A, 4 + nc) layout is not accepted: transpose it first.
        conf: score threshold (strict ``>``).
        iou: NMS IoU threshold (strict ``>`` suppresses).
        classes: class ids to keep, or None for all.
        max_det: keep at most this many boxes.
        agnostic: one NMS over all classes instead of one per class.
        pre_nms_topk: at most this many candidates enter NMS (highest scores).

    Returns:
        xyxy: (K, 4) float32 x1 y1 x2 y2 in model-input pixels (not clipped),
        scores: (K,) float32, class_ids: (K,) int32; by descending score.

    Raises:
        ValueError: ``output`` does not have the layout above, or ``max_det`` /
            ``pre_nms_topk`` is negative.
    """
    out = np.asarray(output)
    if out.ndim == 3 and out.shape[0] >= 1:
        out = out[0]
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(f"expected a YOLOv8 output (B, 4 + nc, anchors) or (4 + nc, anchors), got {np.shape(output)}")
    if max_det < 0 or pre_nms_topk < 0:
        raise ValueError(f"max_det and pre_nms_topk must be >= 0, got {max_det} and {pre_nms_topk}")
    if out.dtype != np.float32:
        out = out.astype(np.float32)

    _, xyxy, score, class_ids = select_yolov8(out[:4], out[4:], conf, iou, classes, max_det, agnostic, pre_nms_topk)
    return xyxy, score, class_ids


def select_yolov8(
    cxcywh: np.ndarray,
    cls_scores: np.ndarray,
    conf: float,
    iou: float,
    classes: Sequence[int] | None,
    max_det: int,
    agnostic: bool,
    pre_nms_topk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The selection of :func:`decode_yolov8`, also returning the kept anchor indices (for mask coefficients).

    Args:
        cxcywh: (4, A) float32 boxes; cls_scores: (nc, A) float32 scores.

    Returns:
        anchors (K,) int64, xyxy (K, 4) float32, scores (K,) float32, class_ids (K,) int32.
    """
    best = cls_scores.max(axis=0)
    cand = np.flatnonzero(best > conf)
    score = best[cand]
    class_ids = cls_scores[:, cand].argmax(axis=0).astype(np.int32)
    if classes is not None:
        allowed = np.isin(class_ids, np.asarray(list(classes), dtype=np.int64))
        cand, score, class_ids = cand[allowed], score[allowed], class_ids[allowed]
    if cand.size > pre_nms_topk:
        top = np.sort(np.argsort(-score, kind="stable")[:pre_nms_topk])
        cand, score, class_ids = cand[top], score[top], class_ids[top]

    boxes = cxcywh[:, cand]
    half = boxes[2:] / 2
    xyxy = np.empty((cand.size, 4), np.float32)
    xyxy[:, :2] = (boxes[:2] - half).T
    xyxy[:, 2:] = (boxes[:2] + half).T

    keep = nms(xyxy, score, None if agnostic else class_ids, iou, max_det)
    return cand[keep], xyxy[keep], score[keep], class_ids[keep]


def yolov5_to_yolov8(output: np.ndarray) -> np.ndarray:
    """Ultralytics YOLOv5 layout ``(B, A, 5 + nc)`` -> YOLOv8 layout ``(B, 4 + nc, A)``.

    Class scores become ``objectness * class score``, the confidence YOLOv5's own
    NMS thresholds, so :func:`decode_yolov8` then applies the same rules.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3 or out.shape[2] < 6:
        raise ValueError(f"expected a YOLOv5 output (B, anchors, 5 + nc), got {np.shape(output)}")
    merged = np.concatenate([out[..., :4], out[..., 5:] * out[..., 4:5]], axis=2)
    return merged.transpose(0, 2, 1)


def yolox_to_yolov8(output: np.ndarray, input_hw: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)) -> np.ndarray:
    """YOLOX raw grids ``(B, A, 5 + nc)`` -> YOLOv8 layout ``(B, 4 + nc, A)`` in input pixels.

    YOLOX exported with ``decode_in_inference=False`` outputs, per grid cell of each
    stride (row-major, stride 8 first), ``dx, dy, log w, log h`` in grid units and
    sigmoided objectness and class scores: ``cx = (dx + gx) * s``, ``w = exp(log w) * s``,
    and the class score is ``objectness * class``, as YOLOX's own postprocess does.

    Raises:
        ValueError: the anchor count does not match the grids of ``input_hw``.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 2:
        out = out[None]
    h, w = input_hw
    grids, scales = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(h // s, dtype=np.float32), np.arange(w // s, dtype=np.float32), indexing="ij")
        grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
        scales.append(np.full((gx.size, 1), s, np.float32))
    grid, stride = np.concatenate(grids), np.concatenate(scales)
    if out.ndim != 3 or out.shape[1] != len(grid) or out.shape[2] < 6:
        raise ValueError(
            f"a YOLOX raw output for a {h}x{w} input has {len(grid)} anchors (strides {strides}), got shape {np.shape(output)}"
        )
    xy = (out[..., :2] + grid) * stride
    wh = np.exp(np.minimum(out[..., 2:4], 20.0)) * stride
    scores = out[..., 5:] * out[..., 4:5]
    return np.concatenate([xy, wh, scores], axis=2).transpose(0, 2, 1)


# Output names of an in-graph NMS model (edgecv.export.nms) and TensorRT's EfficientNMS_TRT names.
NMS_OUTPUT_NAMES = ("num_dets", "boxes", "scores", "classes")
# An instance-segmentation model with NMS in the graph adds the kept boxes' coefficients and the prototypes.
NMS_MASK_OUTPUTS = ("mask_coefs", "protos")
_NMS_OUTPUT_ALIASES = {"num_detections": "num_dets", "detection_boxes": "boxes", "detection_scores": "scores", "detection_classes": "classes"}


def decode_nms_outputs(
    outputs: dict[str, np.ndarray] | Sequence[np.ndarray],
    conf: float = 0.0,
    classes: Sequence[int] | None = None,
    max_det: int | None = None,
    return_rows: bool = False,
) -> tuple[np.ndarray, ...]:
    """Read batch index 0 of a model with NMS in the graph (``output_format == "nms"``).

    The graph already decoded the boxes and ran NMS with its own ``conf``/``iou``/``max_det``
    (``meta.extra["nms"]``). On top of that the host keeps rows whose score is > ``conf``
    (strict, as :func:`decode_yolov8`; a ``conf`` above the in-graph one gives exactly what the
    graph would have given with it), then those whose class is in ``classes``, then the first
    ``max_det``. Class filtering happens after the graph's ``max_det`` cut, so it can return
    fewer boxes than a host decode that filtered classes before NMS.

    Args:
        outputs: ``num_dets`` (B, 1) int, ``boxes`` (B, K, 4) x1 y1 x2 y2 in model-input pixels,
            ``scores`` (B, K), ``classes`` (B, K) int: by name (TensorRT's ``num_detections``,
            ``detection_boxes`` ... are accepted too) or as a sequence in that order.
        conf: minimum score (strict ``>``).
        classes: class ids to keep, or None for all.
        max_det: keep at most this many, or None for all.

    Returns:
        xyxy: (K, 4) float32, scores: (K,) float32, class_ids: (K,) int32; by descending score;
        with ``return_rows`` also the (K,) indices of the kept rows (to pick their mask coefficients).

    Raises:
        ValueError: the outputs are missing or do not have the shapes above, or ``max_det`` < 0.
    """
    from collections.abc import Mapping

    if isinstance(outputs, Mapping):
        named = {_NMS_OUTPUT_ALIASES.get(k, k): v for k, v in outputs.items()}
        missing = [n for n in NMS_OUTPUT_NAMES if n not in named]
        if missing:
            raise ValueError(f"NMS outputs {missing} missing; got {sorted(outputs)}, expected {list(NMS_OUTPUT_NAMES)}")
        arrays = [np.asarray(named[n]) for n in NMS_OUTPUT_NAMES]
    else:
        arrays = [np.asarray(a) for a in outputs]
        if len(arrays) != 4:
            raise ValueError(f"expected 4 NMS outputs {list(NMS_OUTPUT_NAMES)}, got {len(arrays)}")
    num, boxes, scores, labels = arrays
    if (
        num.ndim != 2 or boxes.ndim != 3 or boxes.shape[2] != 4 or num.shape[0] < 1
        or scores.shape != boxes.shape[:2] or labels.shape != boxes.shape[:2]
    ):
        shapes = [a.shape for a in arrays]
        raise ValueError(f"expected NMS outputs (B, 1), (B, K, 4), (B, K), (B, K), got {shapes}")
    if max_det is not None and max_det < 0:
        raise ValueError(f"max_det must be >= 0 or None, got {max_det}")
    n = int(np.clip(num[0, 0], 0, boxes.shape[1]))
    xyxy = boxes[0, :n].astype(np.float32)
    score = scores[0, :n].astype(np.float32)
    class_ids = labels[0, :n].astype(np.int32)
    keep = score > conf
    if classes is not None:
        keep &= np.isin(class_ids, np.asarray(list(classes), dtype=np.int64))
    idx = np.flatnonzero(keep)[:max_det]
    if return_rows:
        return xyxy[idx], score[idx], class_ids[idx], idx
    return xyxy[idx], score[idx], class_ids[idx]
