"""Result types: what a model returns for one frame, in original-image pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Index = int | slice | Sequence[int] | np.ndarray


def _check(name: str, arr: np.ndarray, ndim: int, dtype: type, n: int | None, tail: tuple[int, ...] = ()) -> None:
    ok = isinstance(arr, np.ndarray) and arr.ndim == ndim and arr.dtype == dtype
    if ok and n is not None:
        ok = arr.shape[0] == n
    if ok and tail:
        ok = tuple(arr.shape[1 : 1 + len(tail)]) == tail
    if not ok:
        want = f"({'N' if n is None else n}{''.join(', ' + str(t) for t in tail)}{', ...' * (ndim - 1 - len(tail))}) {np.dtype(dtype).name}"
        got = f"{getattr(arr, 'shape', '?')} {getattr(arr, 'dtype', type(arr).__name__)}"
        raise ValueError(f"{name} must be {want}, got {got}")


@dataclass(frozen=True, slots=True)
class Detections:
    """Detected objects in one image, in original-image pixel coordinates.

    Attributes:
        xyxy: (N, 4) float32, x1 y1 x2 y2 in pixels.
        scores: (N,) float32 confidences in [0, 1].
        class_ids: (N,) int32 class indices into ``names``.
        names: class names of the model (index -> name); may be empty.
        masks: optional (N, H, W) bool instance masks at image size.
        data: optional per-detection extras, each an array of length N.
        tracker_id: optional (N,) int64 track IDs from a tracker (:mod:`edgecv.track`);
            -1 marks a detection that belongs to no confirmed track.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...] = ()
    masks: np.ndarray | None = None
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check("xyxy", self.xyxy, 2, np.float32, None, (4,))
        n = self.xyxy.shape[0]
        _check("scores", self.scores, 1, np.float32, n)
        _check("class_ids", self.class_ids, 1, np.int32, n)
        if self.masks is not None:
            _check("masks", self.masks, 3, np.bool_, n)
        for key, value in self.data.items():
            if len(value) != n:
                raise ValueError(f"data[{key!r}] must have length {n}, got {len(value)}")
        if self.tracker_id is not None:
            _check("tracker_id", self.tracker_id, 1, np.int64, n)

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), tuple(names)
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Index) -> Detections:
        """Select detections by int, slice, index array or boolean mask; always a Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.asarray(index) if not isinstance(index, slice) else index
        return Detections(
            self.xyxy[idx],
            self.scores[idx],
            self.class_ids[idx],
            self.names,
            None if self.masks is None else self.masks[idx],
            {k: np.asarray(v)[idx] for k, v in self.data.items()},
            None if self.tracker_id is None else self.tracker_id[idx],
        )

    @property
    def class_names(self) -> list[str]:
        """The name of each detection's class (``str(id)`` when the model has no names)."""
        return [self.names[c] if 0 <= c < len(self.names) else str(c) for c in self.class_ids.tolist()]

    def with_nms(self, iou: float = 0.5, class_agnostic: bool = False) -> Detections:
        """Return the detections kept by (class-aware) non-maximum suppression."""
        from edgecv.vision.nms import nms

        keep = nms(self.xyxy, self.scores, None if class_agnostic else self.class_ids, iou)
        return self[keep]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a list of {box, score, class_id, class_name[, track_id]}; masks are not included.

        ``track_id`` is present when the detections went through a tracker (-1: not tracked).
        """
        items: list[dict[str, Any]] = [
            {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(score), 4),
                "class_id": int(cid),
                "class_name": name,
            }
            for box, score, cid, name in zip(
                self.xyxy.tolist(), self.scores.tolist(), self.class_ids.tolist(), self.class_names
            )
        ]
        if self.tracker_id is not None:
            for item, tid in zip(items, self.tracker_id.tolist()):
                item["track_id"] = int(tid)
        return {"detections": items}


@dataclass(frozen=True, slots=True)
class Segmentation:
    """Semantic segmentation of one image.

    Attributes:
        class_map: (H, W) int32 class index per pixel, at original-image size.
        names: class names (index -> name); index 0 is usually background.
        scores: optional (H, W) float32 confidence of the chosen class.
    """

    class_map: np.ndarray
    names: tuple[str, ...] = ()
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check("class_map", self.class_map, 2, np.int32, None)
        if self.scores is not None:
            _check("scores", self.scores, 2, np.float32, self.class_map.shape[0], (self.class_map.shape[1],))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.class_map.shape[0]), int(self.class_map.shape[1]))

    def mask(self, class_id: int) -> np.ndarray:
        """(H, W) bool mask of one class."""
        return self.class_map == class_id

    def area_fractions(self) -> dict[str, float]:
        """Fraction of the image covered by each class present."""
        ids, counts = np.unique(self.class_map, return_counts=True)
        total = float(self.class_map.size) or 1.0
        return {
            (self.names[i] if 0 <= i < len(self.names) else str(i)): round(c / total, 5)
            for i, c in zip(ids.tolist(), counts.tolist())
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (class area fractions); the full map is not included."""
        return {"shape": list(self.shape), "areas": self.area_fractions()}


Result = Detections | Segmentation

STAGES = ("capture", "pre", "infer", "post", "sink")


@dataclass(slots=True)
class StageTimings:
    """Milliseconds spent in each stage of one frame."""

    capture: float = 0.0
    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0
    sink: float = 0.0

    @property
    def total(self) -> float:
        return self.capture + self.pre + self.infer + self.post + self.sink

    def as_dict(self) -> dict[str, float]:
        return {s: round(getattr(self, s), 3) for s in STAGES}


@dataclass(slots=True)
class FrameResult:
    """One processed frame: its index in the source, capture time, timings and result.

    ``age_ms`` is how old the frame was when processing began (live sources);
    ``path`` is the image file it came from, for image folders. From the streaming
    API (``edgecv.stream``): ``source`` (its name) and ``source_index`` (its position
    in the sources given), and ``frame``, the captured (H, W, 3) uint8 BGR image
    (not reused by the source; sinks draw on it in place).
    """

    index: int
    timestamp: float
    result: Result
    timings: StageTimings = field(default_factory=StageTimings)
    age_ms: float = 0.0
    path: str | None = None
    source: str = ""
    source_index: int = 0
    frame: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"frame": self.index, "timestamp": round(self.timestamp, 6)}
        if self.path is not None:
            head["path"] = self.path
        return {**head, "timings_ms": self.timings.as_dict(), **self.result.to_dict()}
