"""Box IoU as COCO computes it (shared by the accuracy benchmark and the export parity check)."""

from __future__ import annotations

import numpy as np


def box_iou_coco(dt: np.ndarray, gt: np.ndarray, iscrowd: np.ndarray) -> np.ndarray:
    """IoU exactly as pycocotools' ``maskUtils.iou`` computes it for boxes.

    Args:
        dt: (D, 4) float64 detections, x y w h.
        gt: (G, 4) float64 ground truths, x y w h.
        iscrowd: (G,) bool; for crowd boxes the union is the detection's area.

    Returns:
        (D, G) float64 IoU.
    """
    dx, dy, dw, dh = (dt[:, i : i + 1] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    d_area = dw * dh
    union = np.where(iscrowd[None, :], d_area, d_area + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)
