"""NMS on ONNX Runtime's ``NonMaxSuppression`` kernel (C++), fed so that it keeps exactly what
``torchvision.ops.batched_nms`` keeps.

ONNX Runtime is already in edgecv's runtime, and its CPU kernel runs the same greedy loop
torchvision's does in compiled code: at the 10-300 candidates of a real frame a numpy NMS is
bound by its per-call overhead, this one is not (``scripts/bench_nms.py``). What makes its
kept set torchvision's (:mod:`edgecv.vision.nms` documents torchvision's arithmetic):

- order: the boxes are passed already in torchvision's order (scores descending, ties by
  index) with distinct scores ``N, N-1, ..., 1``, so the kernel's priority queue, which does
  not order ties, never meets one;
- IoU: the kernel computes ``inter / (area_kept + area_other - inter)`` in float32 from the
  same differences and products as torchvision (it orders each box's corners first, which
  changes nothing for boxes with x2 >= x1 and y2 >= y1: other boxes go to the numpy route),
  and skips pairs that do not overlap or have no area, which a threshold >= 0 never
  suppresses either; x and y enter symmetrically, so xyxy boxes are passed as its yxyx;
- threshold: the kernel compares float32 > float32; it is given the largest float32 ``t``
  with ``x > t`` exactly when ``float64(x) > iou_threshold`` (torchvision's double compare);
- classes: up to 1,000 boxes the caller passes boxes shifted by torchvision's coordinate
  trick (one class); above, each class is its own row of scores (others below the score
  threshold), which is torchvision's per-class loop on the original coordinates.

The graph (one node) is embedded; ``scripts/build_nms_graph.py`` builds it.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import numpy as np

# scripts/build_nms_graph.py: NonMaxSuppression, opset 11, IR 7
GRAPH = base64.b64decode(
    "CAcSBmVkZ2VjdjqwAgpxCgVib3hlcwoGc2NvcmVzCgptYXhfb3V0cHV0Cg1pb3VfdGhyZXNob2xkCg9zY29yZV90aHJlc2hvbGQSCHNlbGVjdGVk"
    "IhFOb25NYXhTdXBwcmVzc2lvbioXChBjZW50ZXJfcG9pbnRfYm94GACgAQISCmVkZ2Vjdl9ubXNaHAoFYm94ZXMSEwoRCAESDQoCCAEKAxIBbgoC"
    "CARaHgoGc2NvcmVzEhQKEggBEg4KAggBCgMSAWMKAxIBbloYCgptYXhfb3V0cHV0EgoKCAgHEgQKAggBWhsKDWlvdV90aHJlc2hvbGQSCgoICAES"
    "BAoCCAFaHQoPc2NvcmVfdGhyZXNob2xkEgoKCAgBEgQKAggBYhsKCHNlbGVjdGVkEg8KDQgHEgkKAxIBawoCCANCBAoAEAs="
)

_lock = threading.Lock()
_session: list[Any] = []  # [] not tried yet; [None] unavailable; [session]
_SCORE_FLOOR = np.array([0.0], np.float32)  # kept out: scores <= 0 (a box's score in another class's row, -1)


def session() -> Any | None:
    """The process's one NMS session (single-threaded, no spinning), or None without onnxruntime."""
    if not _session:
        with _lock:
            if not _session:
                try:
                    import onnxruntime as ort

                    options = ort.SessionOptions()
                    options.intra_op_num_threads = 1
                    options.inter_op_num_threads = 1
                    options.log_severity_level = 3
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    _session.append(ort.InferenceSession(GRAPH, options, providers=["CPUExecutionProvider"]))
                except Exception:  # not installed or unusable: the numpy route serves
                    _session.append(None)
    return _session[0]


def applies(boxes: np.ndarray, threshold: np.generic) -> bool:
    """Whether the kernel keeps torchvision's set for these boxes (float32, in score order) and threshold."""
    if boxes.dtype != np.float32 or not 0.0 <= float(threshold) <= 1.0:
        return False
    return bool(np.isfinite(boxes).all() and (boxes[:, 2:] >= boxes[:, :2]).all())


def greedy(run: Any, boxes: np.ndarray, classes: np.ndarray | None, threshold: np.generic, limit: int) -> np.ndarray:
    """Kept ranks, ascending: ``boxes`` (N, 4) float32 in score order; ``classes`` (N,) for a
    per-class NMS (None: one class); ``threshold`` from :func:`edgecv.vision.nms._threshold`;
    at most ``limit`` kept (per class with ``classes``: the caller cuts the merged list)."""
    n = boxes.shape[0]
    ranks = np.arange(n, 0, -1, dtype=np.float32)  # distinct, descending: the order is the boxes'
    if classes is None:
        scores = ranks.reshape(1, 1, n)
    else:
        kinds, row = np.unique(classes, return_inverse=True)
        scores = np.full((1, kinds.size, n), -1.0, np.float32)
        scores[0, row.reshape(-1), np.arange(n)] = ranks
    feeds = {
        "boxes": np.ascontiguousarray(boxes).reshape(1, n, 4),
        "scores": scores,
        "max_output": np.array([limit if classes is None else n], np.int64),
        "iou_threshold": np.array([threshold], np.float32),
        "score_threshold": _SCORE_FLOOR,
    }
    kept = run.run(None, feeds)[0][:, 2]  # per class, each in score order
    return kept if classes is None else np.sort(kept)
