"""Drawing results on BGR frames with OpenCV: boxes, labels, masks and a status overlay.

Every annotator draws **in place** on the frame it is given and returns that
same array, so a chain of annotators costs no copies; pass ``frame.copy()`` to
keep the original. Frames must be (H, W, 3) uint8 BGR and C-contiguous (what
OpenCV capture and :func:`numpy.ascontiguousarray` give).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edgecv.artifact import TASKS
from edgecv.errors import ConfigError
from edgecv.results import Detections, Result, Segmentation

# 20 well-separated colours (Ultralytics' palette), as BGR; class c gets PALETTE[c % 20].
_PALETTE_HEX = (
    "FF3838 FF9D97 FF701F FFB21D CFD231 48F90A 92CC17 3DDB86 1A9334 00D4BB "
    "2C99A8 00C2FF 344593 6473FF 0018EC 8438FF 520085 CB38FF FF95C8 FF37C7"
).split()
PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_HEX
)
_PALETTE_ARRAY = np.array(PALETTE, np.uint8)  # (20, 3) BGR
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(class_id: int) -> tuple[int, int, int]:
    """The BGR colour of a class (fixed palette, cycled)."""
    return PALETTE[int(class_id) % len(PALETTE)]


@runtime_checkable
class Annotator(Protocol):
    """Draws a result on a frame in place and returns the frame."""

    def annotate(self, frame: np.ndarray, result: Result) -> np.ndarray:
        """Draw ``result`` on ``frame`` ((H, W, 3) uint8 BGR, modified in place); return ``frame``."""
        ...


@dataclass(frozen=True)
class BoxAnnotator:
    """Boxes with a ``name score`` label on a filled background, one colour per class.

    Tracked detections (``tracker_id`` set, see :mod:`edgecv.track`) get a ``#id``
    label prefix and, with ``color_by_track``, one colour per track ID, so an
    object keeps its colour while it moves; untracked ones (-1) keep their class colour.

    Results other than :class:`Detections` are left undrawn, so it can sit in a
    chain with other annotators.

    Attributes:
        thickness: box line width in pixels; None scales it with the image
            (2 px at 640x480, 4 px at 1080p).
        text_scale: OpenCV font scale; None derives it from the thickness.
        show_labels: draw the label (class name) at all.
        show_scores: append the score to the label.
        show_track_ids: prefix the label with ``#id`` for tracked detections.
        color_by_track: colour tracked detections by track ID instead of class.
    """

    thickness: int | None = None
    text_scale: float | None = None
    show_labels: bool = True
    show_scores: bool = True
    show_track_ids: bool = True
    color_by_track: bool = True

    def annotate(self, frame: np.ndarray, result: Result) -> np.ndarray:
        """Draw the boxes of ``result`` on ``frame`` in place (lowest score first, so the best is on top)."""
        _check_frame(frame)
        if not isinstance(result, Detections) or len(result) == 0:
            return frame
        h, w = frame.shape[:2]
        lw = self.thickness or max(round((h + w) / 2 * 0.003), 2)
        scale = self.text_scale or max(lw / 3, 0.4)
        text_lw = max(lw - 1, 1)
        boxes = np.round(result.xyxy).astype(np.int64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        names = result.class_names
        track_ids = result.tracker_id.tolist() if result.tracker_id is not None else [-1] * len(result)
        for i in np.argsort(result.scores, kind="stable").tolist():
            x1, y1, x2, y2 = boxes[i].tolist()
            tid = track_ids[i]
            color = color_for(tid) if self.color_by_track and tid >= 0 else color_for(result.class_ids[i])
            cv2.rectangle(frame, (x1, y1), (x2, y2), color, lw, cv2.LINE_8)
            if self.show_labels:
                label = f"{names[i]} {result.scores[i]:.2f}" if self.show_scores else names[i]
                if self.show_track_ids and tid >= 0:
                    label = f"#{tid} {label}"
                _label(frame, label, (x1, y1), color, scale, text_lw)
        return frame


@dataclass(frozen=True)
class MaskAnnotator:
    """Alpha-blended class colours: a :class:`Segmentation` map, or the instance masks of :class:`Detections`.

    Segmentation pixels of class 0 (background) are left as they are.
    Instance masks are drawn inside each detection's box only (where
    Ultralytics-style masks live), highest score on top; detections without
    masks leave the frame unchanged.

    Attributes:
        alpha: opacity of the colours, 0 (invisible) to 1 (opaque).
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"mask alpha must be in [0, 1], got {self.alpha}", hint="use e.g. 0.5")

    def annotate(self, frame: np.ndarray, result: Result) -> np.ndarray:
        """Blend the masks of ``result`` into ``frame`` in place."""
        _check_frame(frame)
        if isinstance(result, Segmentation):
            self._semantic(frame, result.class_map)
        elif isinstance(result, Detections) and result.masks is not None and len(result):
            self._instances(frame, result)
        return frame

    def _semantic(self, frame: np.ndarray, class_map: np.ndarray) -> None:
        if class_map.shape != frame.shape[:2]:
            raise ValueError(f"class map {class_map.shape} does not match the frame {frame.shape[:2]}")
        fg = class_map != 0
        if not fg.any():
            return
        colors = _PALETTE_ARRAY.take(class_map, axis=0, mode="wrap")  # (H, W, 3), class c -> PALETTE[c % 20]
        self._blend(frame, colors, fg)

    def _instances(self, frame: np.ndarray, det: Detections) -> None:
        masks = det.masks
        assert masks is not None
        h, w = frame.shape[:2]
        if masks.shape[1:] != (h, w):
            raise ValueError(f"instance masks {masks.shape[1:]} do not match the frame {(h, w)}")
        colors = np.zeros_like(frame)
        covered = np.zeros((h, w), bool)
        boxes = det.xyxy
        for i in np.argsort(det.scores, kind="stable").tolist():  # best drawn last, on top
            x1, y1 = max(int(np.floor(boxes[i, 0])), 0), max(int(np.floor(boxes[i, 1])), 0)
            x2, y2 = min(int(np.ceil(boxes[i, 2])), w), min(int(np.ceil(boxes[i, 3])), h)
            if x2 <= x1 or y2 <= y1:
                continue
            m = masks[i, y1:y2, x1:x2]
            colors[y1:y2, x1:x2][m] = color_for(det.class_ids[i])
            covered[y1:y2, x1:x2] |= m
        self._blend(frame, colors, covered)

    def _blend(self, frame: np.ndarray, colors: np.ndarray, where: np.ndarray) -> None:
        """frame = (1 - alpha) * frame + alpha * colors, only where ``where`` (H, W) is True."""
        ys, xs = np.nonzero(where.any(axis=1))[0], np.nonzero(where.any(axis=0))[0]
        if ys.size == 0:
            return
        window = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))  # blend only the bounding box
        roi = frame[window]
        blended = cv2.addWeighted(roi, 1.0 - self.alpha, colors[window], self.alpha, 0.0)
        np.copyto(roi, blended, where=where[window][..., None])


@dataclass(frozen=True)
class ChainAnnotator:
    """Runs several annotators in order on the same frame (e.g. masks, then boxes)."""

    annotators: tuple[Annotator, ...]

    def annotate(self, frame: np.ndarray, result: Result) -> np.ndarray:
        for annotator in self.annotators:
            frame = annotator.annotate(frame, result)
        return frame


def default_annotator(task: str) -> Annotator:
    """The annotator ``edgecv run`` uses for a task: masks + boxes for ``detect``, masks for ``segment``.

    Raises:
        ConfigError: ``task`` is not one of :data:`edgecv.artifact.TASKS`.
    """
    if task == "detect":
        return ChainAnnotator((MaskAnnotator(), BoxAnnotator()))
    if task == "segment":
        return MaskAnnotator()
    close = difflib.get_close_matches(str(task), TASKS, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(TASKS)}"
    raise ConfigError(f"no annotator for task {task!r}", hint=hint)


def draw_status(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Draw text lines (FPS, per-stage ms) on a dimmed box in the top-left corner, in place.

    Args:
        frame: (H, W, 3) uint8 BGR, modified in place.
        lines: one string per line; nothing is drawn when empty.

    Returns:
        ``frame``.
    """
    _check_frame(frame)
    if not lines:
        return frame
    h, w = frame.shape[:2]
    scale = max(min(h, w) / 720 * 0.7, 0.4)
    thick = max(round(scale * 1.5), 1)
    sizes = [cv2.getTextSize(line, _FONT, scale, thick) for line in lines]
    line_h = max(th + base for (_, th), base in sizes) + max(round(4 * scale), 2)
    pad = max(round(6 * scale), 3)
    box_w = min(max(tw for (tw, _), _ in sizes) + 2 * pad, w)
    box_h = min(line_h * len(lines) + pad, h)
    roi = frame[:box_h, :box_w]
    cv2.convertScaleAbs(roi, dst=roi, alpha=0.35)
    for k, line in enumerate(lines):
        y = pad + line_h * k + sizes[k][0][1]
        cv2.putText(frame, line, (pad, y), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return frame


def _label(
    frame: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int], scale: float, thick: int
) -> None:
    """Text on a filled rectangle above the box's top-left corner (inside the box when there is no room)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    h, w = frame.shape[:2]
    x, y = corner
    x = min(x, max(w - tw - 2, 0))
    top = y - th - base - 2
    if top < 0:
        top = y
    cv2.rectangle(frame, (x, top), (x + tw + 2, top + th + base + 2), color, -1, cv2.LINE_8)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
    cv2.putText(frame, text, (x + 1, top + th + 1), _FONT, scale, ink, thick, cv2.LINE_AA)


def _check_frame(frame: np.ndarray) -> None:
    if not (
        isinstance(frame, np.ndarray)
        and frame.ndim == 3
        and frame.shape[2] == 3
        and frame.dtype == np.uint8
        and frame.flags.c_contiguous
        and frame.flags.writeable
    ):
        got = f"{getattr(frame, 'shape', '?')} {getattr(frame, 'dtype', type(frame).__name__)}"
        raise ValueError(
            f"frame must be a writable, C-contiguous (H, W, 3) uint8 BGR array, got {got}; "
            "use np.ascontiguousarray(frame) or frame.copy()"
        )
