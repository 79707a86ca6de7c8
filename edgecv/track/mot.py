"""MOTChallenge text files and simulated detections, for evaluating trackers offline.

A MOTChallenge file has one line per box: ``frame, id, x, y, w, h, conf, ...``
(frames from 1, ``x y w h`` in pixels, top-left corner). :func:`noisy_detections`
turns ground truth into what a detector would give (misses, jittered boxes,
scores, false positives), so a tracker can be scored against the truth it came
from (``scripts/bench_track.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.errors import DatasetError
from edgecv.results import Detections


@dataclass(frozen=True, slots=True)
class MotFrames:
    """Boxes of a MOT file grouped by frame.

    Attributes:
        frames: sorted frame numbers (from 1), one per frame in ``1..last`` (empty frames included).
        ids: per frame, (K,) int64 object IDs.
        xyxy: per frame, (K, 4) float32 boxes x1 y1 x2 y2.
    """

    frames: list[int]
    ids: list[np.ndarray]
    xyxy: list[np.ndarray]


def read_mot(path: str | Path) -> MotFrames:
    """Read a MOTChallenge ``gt.txt``/result file (rows with ``conf`` 0 are ignored entries and skipped)."""
    path = Path(path)
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read MOT file {path}: {exc}", hint="one line per box: frame,id,x,y,w,h,conf,...") from exc
    if rows.size and rows.shape[1] < 6:
        raise DatasetError(f"{path}: MOT rows need at least 6 columns (frame,id,x,y,w,h), got {rows.shape[1]}")
    if rows.size and rows.shape[1] >= 7:
        rows = rows[rows[:, 6] != 0]
    last = int(rows[:, 0].max()) if rows.size else 0
    frames, ids, boxes = [], [], []
    for f in range(1, last + 1):
        r = rows[rows[:, 0] == f]
        frames.append(f)
        ids.append(r[:, 1].astype(np.int64))
        xywh = r[:, 2:6].astype(np.float32)
        boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).reshape(-1, 4))
    return MotFrames(frames, ids, boxes)


def mot_lines(frame: int, detections: Detections) -> Iterable[str]:
    """MOTChallenge result lines for the tracked detections of one frame (``tracker_id`` >= 0; IDs written from 1)."""
    if detections.tracker_id is None:
        raise ValueError("these detections carry no tracker_id; run them through a tracker first")
    for box, tid, score in zip(detections.xyxy.tolist(), detections.tracker_id.tolist(), detections.scores.tolist()):
        if tid >= 0:
            x1, y1, x2, y2 = box
            yield f"{frame},{tid + 1},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1"


def noisy_detections(
    gt: MotFrames,
    *,
    seed: int = 0,
    miss: float = 0.1,
    jitter: float = 0.05,
    false_positives: float = 0.5,
    score_mean: float = 0.75,
    score_std: float = 0.15,
) -> list[Detections]:
    """Simulate a detector from ground truth: one :class:`Detections` per frame, in random order.

    Args:
        gt: the ground truth (:func:`read_mot`).
        seed: random seed (the same seed gives the same detections).
        miss: probability that an object is not detected in a frame.
        jitter: std of the box-corner noise, as a fraction of the box's width/height.
        false_positives: mean number of spurious boxes per frame (Poisson), scored in [0.1, 0.6).
        score_mean, score_std: true detections' scores ~ N(mean, std), clipped to [0.05, 1].

    Returns:
        One Detections per frame of ``gt.frames`` (class 0 for every box).
    """
    rng = np.random.default_rng(seed)
    all_boxes = np.concatenate(gt.xyxy) if gt.xyxy else np.zeros((0, 4), np.float32)
    if len(all_boxes):
        lo, hi = all_boxes[:, :2].min(0), all_boxes[:, 2:].max(0)
        sizes = all_boxes[:, 2:] - all_boxes[:, :2]
    out = []
    for boxes in gt.xyxy:
        keep = rng.random(len(boxes)) >= miss
        b = boxes[keep].astype(np.float64)
        wh = np.repeat(b[:, 2:] - b[:, :2], 2, axis=0).reshape(-1, 4)
        b = b + rng.normal(0.0, jitter, b.shape) * wh
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1.0)
        s = np.clip(rng.normal(score_mean, score_std, len(b)), 0.05, 1.0)
        n_fp = rng.poisson(false_positives) if len(all_boxes) else 0
        if n_fp:
            wh_fp = sizes[rng.integers(0, len(sizes), n_fp)]
            xy = lo + rng.random((n_fp, 2)) * np.maximum(hi - lo - wh_fp, 1.0)
            b = np.concatenate([b, np.concatenate([xy, xy + wh_fp], axis=1)])
            s = np.concatenate([s, rng.uniform(0.1, 0.6, n_fp)])
        order = rng.permutation(len(b))
        out.append(
            Detections(b[order].astype(np.float32), s[order].astype(np.float32), np.zeros(len(b), np.int32))
        )
    return out


def as_pedestrian_gt(src: str | Path, dst: str | Path) -> Path:
    """Copy a ground-truth file with every box marked as a pedestrian (class 1) to be scored.

    TrackEval-style evaluators (``trackers.eval``) score only class-1 rows; files
    with the class column left at -1 (motmetrics' TUD sequences) would count nothing.
    """
    rows = np.loadtxt(Path(src), delimiter=",", ndmin=2, dtype=np.float64)
    if rows.shape[1] < 8:
        rows = np.concatenate([rows, np.ones((len(rows), 8 - rows.shape[1]))], axis=1)
    rows[:, 6] = 1
    rows[:, 7] = 1
    dst = Path(dst)
    dst.write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))
    return dst
