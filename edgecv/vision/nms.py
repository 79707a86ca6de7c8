"""Non-maximum suppression in pure numpy, bit-compatible with ``torchvision.ops.batched_nms``.

The kept set is the one torchvision keeps on CPU for the same float32 or
float64 inputs with finite values (checked against torchvision 0.28's Python
``batched_nms`` running its CPU kernel source), because every step does the
same arithmetic in the same precision:

- order: scores descending, stable (ties keep the lower index first);
- areas ``(x2 - x1) * (y2 - y1)`` (no ``+ 1``), overlap ``max(0, min - max)``,
  IoU ``inter / (area_i + area_j - inter)``, all in the boxes' dtype;
- a box is suppressed when its IoU with a kept box is strictly greater than
  ``iou_threshold`` (compared as a float64, like the C++ ``double``), so an IoU
  exactly at the threshold is kept; two zero-area boxes give 0/0 = NaN, which
  suppresses nothing;
- class-aware NMS dispatches as ``batched_nms`` does on CPU: up to 1000 boxes,
  the coordinate trick (boxes shifted by ``class_id * (max coordinate + 1)``,
  rounded in float32 like torchvision's); above, per-class NMS on the original
  coordinates. Like torchvision's trick, boxes with coordinates below -1 can
  then meet boxes of another class; boxes with all coordinates >= -1 never do.

Algorithm: blocked greedy NMS. The candidates are sorted once; the next
``_BLOCK`` (64) survivors are resolved against each other with a 64 x 64 IoU
matrix and a short Python loop, and the boxes kept from that block suppress
all later survivors with one (kept x rest) IoU matrix, after which the
survivors are compacted. Python work is O(N / 64) vectorised steps instead of
one per kept box, and suppressed boxes leave the arrays early. Measured on a
busy 2-core x86 machine (float32, class-agnostic): 200 / 1000 / 5000 candidates
in 10 / 30 / 100 clusters (YOLO-like) take ~0.1 / ~0.6 / ~7 ms. The cost grows
with kept x candidates: 5000 scattered boxes of which 3500 survive take
~0.3 s, or ~50 ms with ``max_det=300`` (the loop stops once ``max_det`` boxes
are kept, which cannot change which ones they are).
"""

from __future__ import annotations

import numpy as np

_BLOCK = 64
# torchvision.ops.batched_nms switches from the coordinate trick to a per-class
# loop when boxes.numel() > 4000 on CPU; mirrored so the kept set is identical.
_TRICK_MAX_NUMEL = 4000


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray | None,
    iou_threshold: float,
    max_det: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression, class-aware when ``class_ids`` is given.

    Args:
        xyxy: (N, 4) float32 (or float64) boxes x1 y1 x2 y2. Other dtypes are
            converted to float32; float64 is kept, as torchvision would.
        scores: (N,) scores; higher wins.
        class_ids: (N,) integer class per box, or None for class-agnostic NMS.
        iou_threshold: a box whose IoU with a kept box is > this is dropped.
        max_det: keep at most this many (the highest-scoring survivors).

    Returns:
        (K,) int64 indices into the inputs of the kept boxes, by descending
        score (ties: lower index first).

    Raises:
        ValueError: shapes or dtypes do not match the above.
    """
    boxes = np.asarray(xyxy)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must be (N, 4), got {boxes.shape} {boxes.dtype}")
    if boxes.dtype != np.float64:
        boxes = boxes.astype(np.float32, copy=False)
    n = boxes.shape[0]
    scores = np.asarray(scores)
    if scores.shape != (n,):
        raise ValueError(f"scores must be ({n},) to match xyxy, got {scores.shape}")
    if class_ids is not None:
        class_ids = np.asarray(class_ids)
        if class_ids.shape != (n,) or not np.issubdtype(class_ids.dtype, np.integer):
            raise ValueError(
                f"class_ids must be ({n},) integers to match xyxy, got {class_ids.shape} {class_ids.dtype}"
            )
    if max_det is not None and max_det < 0:
        raise ValueError(f"max_det must be >= 0 or None, got {max_det}")
    if n == 0 or max_det == 0:
        return np.zeros(0, np.int64)

    per_class = None
    if class_ids is not None:
        if boxes.size > _TRICK_MAX_NUMEL:
            per_class = class_ids
        else:
            # torchvision's _batched_nms_coordinate_trick, same dtype and rounding.
            one = boxes.dtype.type(1)
            offsets = class_ids.astype(boxes.dtype) * (boxes.max() + one)
            boxes = boxes + offsets[:, None]

    order = np.argsort(-scores.astype(np.float64, copy=False), kind="stable")
    data = np.empty((5, n), boxes.dtype)  # rows x1 y1 x2 y2 area, columns in score order
    data[:4] = boxes[order].T
    data[4] = (data[2] - data[0]) * (data[3] - data[1])
    cls = None if per_class is None else per_class[order]
    thr = _threshold(iou_threshold, boxes.dtype)
    limit = n if max_det is None else min(max_det, n)

    kept: list[np.ndarray] = []
    n_kept = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        while order.size:
            b = min(_BLOCK, order.size)
            block = data[:, :b]
            block_cls = None if cls is None else cls[:b]
            within = np.triu(_suppresses(block, block, block_cls, block_cls, thr), 1)
            if within.any():
                dead = np.zeros(b, bool)
                local = []
                for i in range(b):
                    if not dead[i]:
                        local.append(i)
                        dead |= within[i]
                sel = np.asarray(local, np.intp)
            else:
                sel = np.arange(b)
            kept.append(order[sel])
            n_kept += sel.size
            if n_kept >= limit or order.size == b:
                break
            rest = data[:, b:]
            rest_cls = None if cls is None else cls[b:]
            alive = ~_suppresses(block[:, sel], rest, None if cls is None else block_cls[sel], rest_cls, thr).any(0)
            data = rest[:, alive]
            order = order[b:][alive]
            if cls is not None:
                cls = rest_cls[alive]
    return np.concatenate(kept)[:limit].astype(np.int64, copy=False)


def _threshold(iou_threshold: float, dtype: np.dtype) -> np.generic:
    """The largest ``dtype`` value t with ``x > t`` <=> ``float64(x) > iou_threshold`` for all x of ``dtype``."""
    thr = float(iou_threshold)
    t = dtype.type(thr)
    if float(t) > thr:  # compare in float64: float32 > python float would round thr to float32
        t = np.nextafter(t, dtype.type(-np.inf))
    return t


def _suppresses(
    a: np.ndarray, b: np.ndarray, a_cls: np.ndarray | None, b_cls: np.ndarray | None, thr: np.generic
) -> np.ndarray:
    """(P, Q) bool: IoU(a_p, b_q) > thr (and same class when classes are given).

    ``a``: (5, P) and ``b``: (5, Q) rows x1 y1 x2 y2 area, arithmetic as torchvision's kernel.
    """
    lo = np.maximum(a[:2, :, None], b[:2, None, :])
    wh = np.minimum(a[2:4, :, None], b[2:4, None, :])
    wh -= lo
    np.maximum(wh, 0, out=wh)
    inter = wh[0] * wh[1]
    union = a[4, :, None] + b[4, None, :]
    union -= inter
    out = np.divide(inter, union, out=inter) > thr
    if a_cls is not None and b_cls is not None:
        out &= a_cls[:, None] == b_cls[None, :]
    return out
