"""Outputs of the run loop: video file, JSONL results, a window, a Python callback.

A sink gets the annotated frame and the :class:`~edgecv.results.FrameResult` of
every processed frame. ``close()`` is idempotent and is called from the
pipeline's ``finally`` (normal end, Ctrl+C, SIGTERM, error), so:

* :class:`VideoSink` records into a temp file beside the target and renames it
  on close: the target is always a finalized, playable video, never a
  half-written one (a killed process leaves only a hidden ``.name.*.tmp.*``).
* :class:`JsonlSink` writes the final path directly, one line per frame, flushed
  per line: after any interruption, even SIGKILL or a power cut, the file holds
  every finished frame (a temp+rename file would hold nothing), and JSONL is
  valid at every line boundary, unlike a video container.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from edgecv.artifact import atomic_output
from edgecv.errors import ConfigError, SinkError
from edgecv.results import FrameResult

log = logging.getLogger(__name__)

# What OpenCV's pip wheels write and read back (FACTS.md): no H.264 encoder there.
VIDEO_CODECS: dict[str, str] = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
DEFAULT_FPS = 30.0


@runtime_checkable
class Sink(Protocol):
    """What the run loop writes to.

    ``needs_image``: False for sinks that only use the result (the loop then skips
    drawing when no sink needs the image). ``stop_requested``: a sink may ask the
    loop to stop (a window's ``q``/Esc).
    """

    needs_image: bool
    stop_requested: bool

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        """Consume one frame: ``frame`` (H, W, 3) uint8 BGR, annotated; ``result`` its results and timings."""
        ...

    def close(self) -> None:
        """Finalize and free everything; idempotent."""
        ...


class _SinkBase:
    needs_image = True
    stop_requested = False
    _closed = False

    def close(self) -> None:  # pragma: no cover - overridden
        self._closed = True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSink(_SinkBase):
    """Record annotated frames to a video file; the codec follows the suffix.

    ``.mp4``/``.m4v``/``.mov`` -> mp4v, ``.avi`` -> MJPG (largest, most robust),
    ``.mkv`` -> XVID. Frames of another size than the video are resized to it.

    Args:
        path: target file; written as a temp file beside it and renamed on :meth:`close`.
        fps: frame rate of the video (the source's); None (e.g. images) -> 30.
        size: (width, height); None -> taken from the first frame.
        fourcc: override the codec (four characters, e.g. ``"FFV1"`` for lossless .mkv).

    Raises:
        ConfigError: unknown suffix or bad fourcc.
        SinkError: the folder does not exist / is not writable, or OpenCV cannot write this codec.
    """

    def __init__(
        self,
        path: Path | str,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        *,
        fourcc: str | None = None,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if fourcc is None:
            if suffix not in VIDEO_CODECS:
                raise ConfigError(
                    f"cannot write video {self.path}: unknown suffix {suffix or '(none)'}",
                    hint="use " + ", ".join(f"{s} ({c})" for s, c in VIDEO_CODECS.items()),
                )
            fourcc = VIDEO_CODECS[suffix]
        if len(fourcc) != 4:
            raise ConfigError(f"fourcc must be 4 characters, got {fourcc!r}", hint="e.g. mp4v, MJPG, XVID, FFV1")
        self.fourcc = fourcc
        if fps is None or not (0 < fps <= 1000):
            log.info("video %s: source fps unknown, writing at %g fps", self.path, DEFAULT_FPS)
            fps = DEFAULT_FPS
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: Any = None
        self._warned_resize = False
        self._atomic = atomic_output(self.path)
        try:
            self._tmp = self._atomic.__enter__()
        except ConfigError as exc:
            raise SinkError(f"cannot write video {self.path}: {exc.message}", hint=exc.hint) from exc
        if size is not None:
            self._open(size)

    def _open(self, size: tuple[int, int]) -> None:
        w, h = int(size[0]), int(size[1])
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
        if not writer.isOpened():
            writer.release()
            self._discard()
            raise SinkError(
                f"OpenCV cannot write {self.fourcc} video {self.path} ({w}x{h} @ {self.fps:g} fps)",
                hint="use .avi (MJPG), the most portable; .mp4 needs mp4v support in OpenCV's FFmpeg",
            )
        self._writer = writer
        self.size = (w, h)

    def write(self, frame: np.ndarray, result: FrameResult | None = None) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        if self._closed:
            raise SinkError(f"video {self.path} is already closed")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            self._open((frame.shape[1], frame.shape[0]))
        assert self.size is not None
        if (frame.shape[1], frame.shape[0]) != self.size:
            if not self._warned_resize:
                log.warning(
                    "video %s: frame size %dx%d differs from %dx%d; resizing",
                    self.path,
                    frame.shape[1],
                    frame.shape[0],
                    *self.size,
                )
                self._warned_resize = True
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finalize the video and rename it into place (nothing is written if no frame came)."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames == 0:
            log.warning("no frames were written; %s was not created", self.path)
            self._discard()
            return
        try:
            self._atomic.__exit__(None, None, None)
        except ConfigError as exc:
            raise SinkError(f"cannot finalize video {self.path}: {exc.message}", hint=exc.hint) from exc
        log.info("wrote %s (%d frames, %g fps)", self.path, self.frames, self.fps)

    def _discard(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            log.debug("could not remove %s", self._tmp, exc_info=True)

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, fourcc={self.fourcc}, fps={self.fps:g})"


class JsonlSink(_SinkBase):
    """One JSON object per frame (``FrameResult.to_dict()``), flushed line by line.

    Boxes are in original-image pixels. Every line is complete as soon as its frame
    is done, so the file is usable after Ctrl+C, SIGTERM or even SIGKILL.

    Raises:
        SinkError: the file cannot be created (missing folder, permissions).
    """

    needs_image = False

    def __init__(self, path: Path | str, *, append: bool = False) -> None:
        self.path = Path(path)
        self.lines = 0
        if not self.path.parent.is_dir():
            raise SinkError(
                f"cannot write {self.path}: folder {self.path.parent} does not exist",
                hint=f"create it: mkdir -p {self.path.parent}",
            )
        try:
            self._file = open(self.path, "a" if append else "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}", hint="choose a writable output path") from exc

    def write(self, frame: np.ndarray | None, result: FrameResult) -> None:
        if self._closed:
            raise SinkError(f"{self.path} is already closed")
        try:
            # One write call per line; line buffering flushes it at the newline.
            self._file.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        except OSError as exc:
            raise SinkError(
                f"cannot write {self.path}: {exc.strerror}", hint="free disk space or choose another output path"
            ) from exc
        self.lines += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._file.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


def gui_problem() -> str | None:
    """Why a window cannot be shown here (no display, headless OpenCV), or None when it can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    match = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if match and match.group(1).upper() == "NONE":
        return f"this OpenCV ({cv2.__version__}) has no GUI support (a headless build)"
    return None


_GUI_HINT = (
    "run it on a desktop (or `ssh -X`, or DISPLAY=:0 on a Jetson with a monitor); for a headless OpenCV "
    "`pip uninstall opencv-python-headless && pip install opencv-python` (on Jetson, JetPack's OpenCV has a GUI); "
    "or record instead of showing: --save out.mp4"
)


class WindowSink(_SinkBase):
    """Show annotated frames in an OpenCV window; ``q`` or Esc (or closing the window) asks the loop to stop.

    Raises:
        SinkError: no display, or OpenCV was built without GUI support.
    """

    def __init__(self, title: str = "edgecv", *, wait_ms: int = 1) -> None:
        problem = gui_problem()
        if problem:
            raise SinkError(f"cannot show a window: {problem}", hint=_GUI_HINT)
        self.title = title
        self.wait_ms = max(1, int(wait_ms))
        self.stop_requested = False
        self._shown = False

    def write(self, frame: np.ndarray, result: FrameResult | None = None) -> None:
        try:
            cv2.imshow(self.title, frame)
            key = cv2.waitKey(self.wait_ms) & 0xFF
        except cv2.error as exc:
            raise SinkError(f"cannot show a window: {exc.err or exc}", hint=_GUI_HINT) from exc
        self._shown = True
        if key in (ord("q"), 27):
            self.stop_requested = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True  # the user closed the window

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shown:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                log.debug("closing window %r failed", self.title, exc_info=True)

    def __repr__(self) -> str:
        return f"WindowSink({self.title!r})"


class CallbackSink(_SinkBase):
    """Call ``fn(frame_result)`` per frame, or ``fn(frame_result, frame)`` with ``with_image=True``.

    The frame is the annotated image, reused by nobody after the call: keep it if you need it.
    """

    def __init__(self, fn: Callable[..., Any], *, with_image: bool = False) -> None:
        if not callable(fn):
            raise ConfigError(f"callback must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.needs_image = with_image

    def write(self, frame: np.ndarray | None, result: FrameResult) -> None:
        if self.needs_image:
            self.fn(result, frame)
        else:
            self.fn(result)

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"CallbackSink({getattr(self.fn, '__name__', self.fn)!r})"
