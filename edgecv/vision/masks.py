"""Instance masks of Ultralytics YOLOv8/11-seg models: boxes + mask coefficients + prototypes.

Selection is :func:`edgecv.vision.decode.decode_yolov8`'s (same steps, same
:func:`edgecv.vision.nms.nms`), so a seg model returns the boxes its detection
head alone would. Each kept box's mask is ``coefs @ protos`` (a logit plane at
proto resolution, normally input / 4), read bilinearly at the centre of every
original-image pixel inside the box and thresholded at 0 (``sigmoid > 0.5``;
Ultralytics' ``process_mask`` also thresholds the upsampled logits at 0).

Reading the proto plane straight at original-image pixels is the exact value
that upsampling it bilinearly to the letterboxed input and then to the original
would approximate twice, and it costs one bilinear read per pixel inside each
kept box only: no full-size resize per mask, no work outside boxes (which are
zero, as Ultralytics' ``crop_mask`` makes them), none for dropped anchors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgecv.vision.decode import select_yolov8
from edgecv.vision.letterbox import LetterboxTransform

NUM_PROTOS = 32


def decode_yolov8_seg(
    output0: np.ndarray,
    protos: np.ndarray,
    conf: float,
    iou: float,
    transform: LetterboxTransform,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    agnostic: bool = False,
    pre_nms_topk: int = 30000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode batch index 0 of a YOLOv8/11-seg model into boxes and masks in original-image pixels.

    Args:
        output0: (B, 4 + nc + 32, A) or (4 + nc + 32, A): cx, cy, w, h in model-input
            pixels, nc sigmoid class scores, 32 mask coefficients. float16 is read as float32.
        protos: (B, 32, h, w) or (32, h, w) mask prototypes covering the whole model input.
        conf, iou, classes, max_det, agnostic, pre_nms_topk: as :func:`edgecv.vision.decode.decode_yolov8`.
        transform: the letterbox transform the input was made with.

    Returns:
        xyxy: (K, 4) float32 x1 y1 x2 y2 in original-image pixels (clipped to it),
        scores: (K,) float32, class_ids: (K,) int32 (by descending score),
        masks: (K, H, W) bool at the original size ``transform.src_size``, False outside each box.

    Raises:
        ValueError: the outputs do not have the shapes above, or ``max_det`` / ``pre_nms_topk`` < 0.
    """
    out = np.asarray(output0)
    if out.ndim == 3 and out.shape[0] >= 1:
        out = out[0]
    pro = np.asarray(protos)
    if pro.ndim == 4 and pro.shape[0] >= 1:
        pro = pro[0]
    bad_protos = pro.ndim != 3 or pro.shape[0] != NUM_PROTOS or min(pro.shape) < 1
    if out.ndim != 2 or out.shape[0] < 5 + NUM_PROTOS or bad_protos:
        raise ValueError(
            f"expected YOLOv8-seg outputs (B, 4 + nc + {NUM_PROTOS}, anchors) and (B, {NUM_PROTOS}, h, w), "
            f"got {np.shape(output0)} and {np.shape(protos)}"
        )
    if max_det < 0 or pre_nms_topk < 0:
        raise ValueError(f"max_det and pre_nms_topk must be >= 0, got {max_det} and {pre_nms_topk}")
    out = out.astype(np.float32, copy=False)
    nc = out.shape[0] - 4 - NUM_PROTOS

    anchors, xyxy, score, class_ids = select_yolov8(
        out[:4], out[4 : 4 + nc], conf, iou, classes, max_det, agnostic, pre_nms_topk
    )
    boxes = transform.boxes_to_src(xyxy)  # clipped to the image
    masks = render_masks(out[4 + nc :, anchors].T, pro, boxes, transform)
    return boxes, score, class_ids, masks


def render_masks(coefs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """Instance masks at the original image size from mask coefficients and prototypes.

    Args:
        coefs: (K, 32) mask coefficients of the kept boxes.
        protos: (32, h, w) prototypes covering the whole model input.
        boxes: (K, 4) x1 y1 x2 y2 in original-image pixels (clipped); pixels outside stay False.
        transform: the letterbox transform the input was made with.

    Returns:
        (K, H, W) bool at ``transform.src_size``.
    """
    src_h, src_w = transform.src_size
    masks = np.zeros((len(boxes), src_h, src_w), bool)
    if not len(boxes):
        return masks
    _, ph, pw = protos.shape
    logits = (np.asarray(coefs, np.float32) @ protos.reshape(NUM_PROTOS, -1).astype(np.float32, copy=False)).reshape(-1, ph, pw)
    in_h, in_w = transform.dst_size
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        # pixels c with x1 <= c < x2 (Ultralytics' crop_mask rule), in the original image
        c0, c1 = math.ceil(x1), math.ceil(x2)
        r0, r1 = math.ceil(y1), math.ceil(y2)
        if c1 <= c0 or r1 <= r0:
            continue
        ry = _bilinear_axis(np.arange(r0, r1), transform.scale, transform.pad_y, ph / in_h, ph)
        rx = _bilinear_axis(np.arange(c0, c1), transform.scale, transform.pad_x, pw / in_w, pw)
        rows = logits[k].take(ry[0], axis=0) * (1 - ry[2])[:, None] + logits[k].take(ry[1], axis=0) * ry[2][:, None]
        roi = rows.take(rx[0], axis=1) * (1 - rx[2]) + rows.take(rx[1], axis=1) * rx[2]
        masks[k, r0:r1, c0:c1] = roi > 0
    return masks


def _bilinear_axis(
    src: np.ndarray, scale: float, pad: float, ratio: float, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proto-plane neighbours (i0, i1) and weight of i1 for original-image pixel indices ``src`` on one axis.

    Pixel centres map as ``input = (src + 0.5) * scale + pad`` (a centre-aligned
    resize, then the letterbox padding) and ``proto = input * ratio - 0.5``;
    reads past the edge repeat it, like a half-pixel-centred bilinear resize.
    """
    pos = np.clip(((src + 0.5) * scale + pad) * ratio - 0.5, 0, size - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, (pos - i0).astype(np.float32)
