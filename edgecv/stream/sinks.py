"""Outputs of the run loop: video file, JSONL results, a window, a Python callback.

A sink gets the annotated frame and the :class:`~edgecv.results.FrameResult` of
every processed frame. ``close()`` is idempotent and is called from the
pipeline's ``finally`` (normal end, Ctrl+C, SIGTERM, error), so:

* :class:`VideoSink` records into a temp file beside the target and renames it
  on close, after checking that the finished file opens and holds every frame:
  the target is always a finalized, playable video, never a half-written one.
  OpenCV's writer reports write failures only as log warnings, so the sink
  watches the disk itself: it stops recording (and finalizes what it has) while
  the folder still has room for the container's index, and a file that still
  fails its check is kept as ``NAME.partial.SUFFIX`` and reported, never as
  "wrote N frames". A killed process leaves only a hidden
  ``.NAME.edgecv-tmp-PID-*`` that the next edgecv writing there removes.
* :class:`JsonlSink` writes the final path directly, one line per frame, flushed
  per line: after any interruption, even SIGKILL or a power cut, the file holds
  every finished frame (a temp+rename file would hold nothing), and JSONL is
  valid at every line boundary, unlike a video container. The file is opened
  (and an existing one truncated) only when the first frame arrives, so a run
  that fails to start leaves an existing JSONL untouched; a write that fails
  (disk full) is cut back to the last complete line.
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

from edgecv.artifact import atomic_output, check_writable
from edgecv.errors import ConfigError, OutputError, SinkError
from edgecv.results import FrameResult

log = logging.getLogger(__name__)

# What OpenCV's pip wheels write and read back (FACTS.md): no H.264 encoder there.
VIDEO_CODECS: dict[str, str] = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
DEFAULT_FPS = 30.0
# Room a video must keep free to be finalized: the container's index (about 16 bytes a frame for
# MP4's sample tables, 16 for AVI's idx1) plus this much, plus twice the largest growth per frame seen.
VIDEO_RESERVE_BYTES = 256 * 1024
# A writer whose file has not grown for this many frames is failing silently (OpenCV only logs it).
STALL_FRAMES = 600


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system (a huge number when it cannot tell)."""
    try:
        st = os.statvfs(folder)
    except OSError:  # a file system without statvfs: the growth check and the final check still apply
        return 1 << 62
    return st.f_bavail * st.f_frsize


def partial_path(path: Path) -> Path:
    """Where an unfinished recording is kept: ``out.mp4`` -> ``out.partial.mp4``."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


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
        self.failure: str | None = None  # why the recording stopped early, if it did
        self._writer: Any = None
        self._warned_resize = False
        self._atomic = atomic_output(self.path)
        try:
            self._tmp = self._atomic.__enter__()
        except (ConfigError, OutputError) as exc:
            raise SinkError(f"cannot write video {self.path}: {exc.message}", hint=exc.hint) from exc
        self._folder = self._tmp.parent
        self._bytes = 0
        self._max_step = 0
        self._stalled = 0
        if free_bytes(self._folder) < self._reserve():
            self._discard()
            raise SinkError(
                f"cannot record video {self.path}: only {free_bytes(self._folder) / 1e6:.2f} MB free in {self._folder}",
                hint="free disk space (or record to another disk)",
            )
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
        try:
            self._writer.write(frame)
        except cv2.error as exc:
            self._stop_recording(f"OpenCV failed to write frame {self.frames}: {exc.err or exc}")
        self.frames += 1
        self._check_disk()

    def _reserve(self) -> int:
        return VIDEO_RESERVE_BYTES + 16 * self.frames + 2 * self._max_step

    def _check_disk(self) -> None:
        """Stop (and finalize) while the container still fits; catch a writer that fails silently."""
        try:
            size = os.stat(self._tmp).st_size
            free = free_bytes(self._folder)
        except OSError as exc:
            self._stop_recording(f"the temp file {self._tmp} is gone or unreadable ({exc.strerror})")
            return
        step = size - self._bytes
        if step > 0:
            self._max_step = max(self._max_step, step)
            self._stalled = 0
        else:
            self._stalled += 1
        self._bytes = size
        if free < self._reserve():
            self._stop_recording(f"the disk is almost full ({free / 1e6:.2f} MB left in {self._folder})")
        elif self._stalled >= STALL_FRAMES:
            self._stop_recording(f"the file has not grown for {self._stalled} frames (the writer is failing)")

    def _stop_recording(self, why: str) -> None:
        """Finalize what was recorded, then raise one error saying what happened and where the frames are."""
        frames = self.frames
        self.failure = why
        try:
            self.close()
            kept = f"all {frames} frames are saved in {self.path}"
        except SinkError as exc:
            kept = exc.message
        raise SinkError(
            f"stopped recording {self.path} after {frames} frames: {why}; {kept}",
            hint="free disk space (or record to another disk) and run again",
        )

    def close(self) -> None:
        """Finalize the video, check it, and rename it into place (nothing is written if no frame came).

        Raises:
            SinkError: the finished file does not open or holds fewer frames than were written;
                it is kept as ``NAME.partial.SUFFIX`` when some frames are decodable.
        """
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            try:
                self._writer.release()
            except cv2.error as exc:
                log.debug("releasing the video writer failed: %s", exc)
            self._writer = None
        if self.frames == 0:
            log.warning("no frames were written; %s was not created", self.path)
            self._discard()
            return
        decodable = _count_frames(self._tmp)
        if 0 <= decodable < self.frames:
            self._keep_partial(decodable)
        try:
            self._atomic.commit()
        except (ConfigError, OutputError) as exc:
            raise SinkError(f"cannot finalize video {self.path}: {exc.message}", hint=exc.hint) from exc
        if self.failure is None:
            log.info("wrote %s (%d frames, %g fps)", self.path, self.frames, self.fps)

    def _keep_partial(self, decodable: int) -> None:
        """The finished file is not what was recorded: keep it as NAME.partial.SUFFIX (or drop it) and raise."""
        hint = "free disk space (or record to another disk) and run again"
        if decodable <= 0:
            self._discard()
            raise SinkError(f"video {self.path} could not be finalized: the file holds no playable frame (of {self.frames} written); nothing was kept", hint=hint)
        partial = partial_path(self.path)
        try:
            os.replace(self._tmp, partial)
        except OSError as exc:
            self._discard()
            raise SinkError(f"video {self.path} could not be finalized ({exc.strerror})", hint=hint) from exc
        raise SinkError(
            f"video {self.path} could not be finalized: {decodable} of {self.frames} frames are readable; kept as {partial}",
            hint=hint,
        )

    def _discard(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            log.debug("could not remove %s", self._tmp, exc_info=True)

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, fourcc={self.fourcc}, fps={self.fps:g})"


def _count_frames(path: Path) -> int:
    """Frames a finished video declares (its index), 0 when it does not open; -1 when OpenCV cannot tell."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if not count or count < 0:
            ok, _ = cap.read()
            return -1 if ok else 0
        return int(count)
    finally:
        cap.release()


class JsonlSink(_SinkBase):
    """One JSON object per frame (``FrameResult.to_dict()``), flushed line by line.

    Boxes are in original-image pixels. Every line is complete as soon as its frame
    is done, so the file is usable after Ctrl+C, SIGTERM or even SIGKILL. The folder
    is checked at construction; the file itself is opened (an existing one replaced,
    unless ``append``) when the first frame arrives.

    Raises:
        SinkError: the file cannot be created (missing folder, permissions, read-only disk).
    """

    needs_image = False

    def __init__(self, path: Path | str, *, append: bool = False) -> None:
        self.path = Path(path)
        self.lines = 0
        self._append = append
        self._file: Any = None
        self._good = 0  # byte offset after the last complete line
        try:
            check_writable(self.path, "JSONL")
        except ConfigError as exc:
            raise SinkError(exc.message, hint=exc.hint) from exc

    def _open(self) -> None:
        try:
            self._file = open(self.path, "a" if self._append else "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._good = self._file.tell()
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}", hint="choose a writable output path") from exc

    def write(self, frame: np.ndarray | None, result: FrameResult) -> None:
        if self._closed:
            raise SinkError(f"{self.path} is already closed")
        if self._file is None:
            self._open()
        line = json.dumps(result.to_dict(), separators=(",", ":")) + "\n"
        try:
            self._file.write(line)
            self._file.flush()  # one complete line on disk per frame
        except OSError as exc:
            self._cut_back()
            raise SinkError(
                f"cannot write {self.path}: {exc.strerror}; it holds the {self.lines} complete lines written before",
                hint="free disk space or choose another output path",
            ) from exc
        self._good = self._file.tell()
        self.lines += 1

    def _cut_back(self) -> None:
        """Drop a half-written last line (a full disk can take part of it), so every line parses."""
        try:
            self._file.close()
        except OSError:
            pass  # its buffer could not be flushed: that is the partial line being dropped
        try:
            os.truncate(self.path, self._good)
        except OSError:
            log.debug("could not truncate %s to its last complete line", self.path, exc_info=True)
        self._closed = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._closed = False
                self._cut_back()
                raise SinkError(f"cannot write {self.path}: {exc.strerror}", hint="free disk space or choose another output path") from exc

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
