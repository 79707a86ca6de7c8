"""The capture machinery behind every source: a thread per source feeding a hand-off.

:class:`Source` owns the thread and the hand-off (newest-frame slot for live
sources, bounded queue for files/images); :class:`CaptureSource` wraps a
``cv2.VideoCapture`` (camera, stream, GStreamer, file) with reconnect and
realtime pacing; :class:`ImageSource` reads still images. Use
:func:`edgecv.stream.sources.open_source` rather than these constructors.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecv.errors import ConfigError, EdgecvError, SourceError
from edgecv.stream._handoff import Handoff
from edgecv.stream.stats import LatencyStats

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Frame:
    """One captured frame.

    Attributes:
        index: position in the source (decode order; for live sources it counts
            every captured frame, so indices skip over dropped ones; for images,
            the position in the sorted file list).
        timestamp: ``time.time()`` when the frame was captured.
        image: (H, W, 3) uint8 BGR. A fresh array per frame that the source never
            touches again, so the consumer may draw on it in place.
        capture_ms: time spent reading and decoding it.
        path: the image file it came from (image sources), else None.
        age_ms: how old the frame was when :meth:`Source.read` handed it over.
    """

    index: int
    timestamp: float
    image: np.ndarray
    capture_ms: float
    path: str | None = None
    age_ms: float = 0.0


@dataclass(slots=True)
class SourceStats:
    """Counters of a source (updated by its capture thread; read them any time)."""

    frames_read: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    age: LatencyStats = field(default_factory=lambda: LatencyStats("age"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_read": self.frames_read,
            "frames_delivered": self.frames_delivered,
            "frames_dropped": self.frames_dropped,
            "bad_frames": self.bad_frames,
            "reconnects": self.reconnects,
            "age_ms": self.age.summary(),
        }


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a live source that drops out is reopened: wait ``initial_s``, doubling up to ``max_s``,
    and give up (``SourceError``) when ``max_reconnect_s`` passed without a frame."""

    initial_s: float = 0.5
    max_s: float = 5.0
    max_reconnect_s: float = 30.0

    def __post_init__(self) -> None:
        if not (self.initial_s > 0 and self.max_s >= self.initial_s and self.max_reconnect_s >= 0):
            raise ConfigError(
                f"invalid reconnect backoff: initial {self.initial_s} s, max {self.max_s} s, give up after {self.max_reconnect_s} s",
                hint="use 0 < initial <= max and a non-negative --reconnect-timeout",
            )


class Source:
    """Base class: a capture thread feeding a hand-off; iterate it or call :meth:`read`.

    Subclasses implement :meth:`_capture` (call :meth:`_emit` per frame and
    return at the end) and optionally :meth:`_release`; both run on the thread.
    """

    kind = "source"

    def __init__(
        self,
        name: str,
        *,
        live: bool,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        queue_size: int = 4,
    ) -> None:
        self.name = name
        self.is_live = live
        self.fps = fps
        self.size = size
        self.stats = SourceStats()
        self.reconnecting = False
        # files: frames the container declares, and why the file ended before them (truncated / corrupt)
        self.declared_frames: int | None = None
        self.ended_early: str | None = None
        self._handoff: Handoff[Frame] = Handoff(queue_size, latest_only=live)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- producer side (capture thread) ------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"edgecv-{self.kind}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._capture()
        except EdgecvError as exc:
            error = exc
        except Exception as exc:  # a bug or a backend failure: hand it to the consumer, keep the cause
            log.debug("capture thread of %s failed", self.name, exc_info=True)
            error = SourceError(
                f"capturing from {self.name} failed: {exc!r}", hint="run with -v for details; report it if it persists"
            )
            error.__cause__ = exc
        finally:
            try:
                self._release()
            except Exception:  # releasing must never hide the real outcome
                log.debug("releasing %s failed", self.name, exc_info=True)
            self._handoff.finish(error)

    def _capture(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the capture device (runs on the capture thread when it ends)."""

    def _emit(self, index: int, image: np.ndarray, capture_ms: float, path: str | None = None) -> bool:
        """Hand one frame to the consumer; False when the source was closed (stop capturing)."""
        self.stats.frames_read += 1
        ok = self._handoff.put(Frame(index, time.time(), image, capture_ms, path))
        self.stats.frames_dropped = self._handoff.dropped
        return ok

    def _bad_frame(self, what: str) -> None:
        self.stats.bad_frames += 1
        n = self.stats.bad_frames
        if n <= 3 or n % 100 == 0:
            log.warning("skipped a bad frame from %s: %s (%d bad so far)", self.name, what, n)

    # -- consumer side -------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live: the newest), waiting up to ``timeout`` seconds.

        Returns None on timeout, while a live source reconnects, or at the end
        (then :attr:`finished` is true).

        Raises:
            SourceError: a live source did not come back within ``max_reconnect_s``, or capture failed.
        """
        frame = self._handoff.get(timeout)
        if frame is not None:
            frame.age_ms = (time.time() - frame.timestamp) * 1000.0
            self.stats.frames_delivered += 1
            self.stats.age.add(frame.age_ms)
        return frame

    @property
    def finished(self) -> bool:
        """True when the source has ended (or was closed) and every frame was read."""
        return self._handoff.finished

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read(timeout=0.25)  # short waits keep Ctrl+C responsive
            if frame is not None:
                yield frame
            elif self.finished:
                return

    def close(self, timeout: float = 2.0) -> None:
        """Stop capturing and free the device. Idempotent; safe from any thread.

        Waits up to ``timeout`` seconds for the capture thread (a network read can
        block until its read timeout; the thread then frees the capture itself).
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._handoff.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.debug("capture thread of %s still busy after %.1f s; it will exit on its own", self.name, timeout)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "?"
        return (
            f"{type(self).__name__}({self.name!r}, kind={self.kind}, live={self.is_live}, size={size}, fps={self.fps})"
        )


class CaptureSource(Source):
    """A ``cv2.VideoCapture``-backed source: camera, network stream, GStreamer pipeline or video file.

    Args:
        opener: returns a new ``cv2.VideoCapture`` (called again to reconnect).
        kind: ``"camera"``, ``"stream"``, ``"gstreamer"`` or ``"file"``.
        name: shown in logs and errors (credentials already redacted).
        live: keep only the newest frame (drops counted).
        pace: play at the native fps (``realtime`` files).
        loop: restart a file at its end instead of ending.
        reconnect: how to reopen a live source that drops out; None ends it instead.
        fail: builds the error raised when the first open/read fails (``"open"`` / ``"read"``).
    """

    def __init__(
        self,
        opener: Callable[[], Any],
        *,
        kind: str,
        name: str,
        live: bool,
        pace: bool = False,
        loop: bool = False,
        reconnect: ReconnectPolicy | None = None,
        fail: Callable[[str], SourceError] | None = None,
        queue_size: int = 4,
    ) -> None:
        self.kind = kind
        fail = fail or (lambda what: SourceError(f"cannot {what} {name}"))
        cap = opener()
        if not cap.isOpened():
            cap.release()
            raise fail("open")
        t0 = time.perf_counter()
        ok, image = cap.read()
        first_ms = (time.perf_counter() - t0) * 1000.0
        if not ok or image is None or image.size == 0:
            cap.release()
            raise fail("read")
        super().__init__(
            name,
            live=live,
            fps=_sane_fps(cap.get(cv2.CAP_PROP_FPS)),
            size=(image.shape[1], image.shape[0]),
            queue_size=queue_size,
        )
        self._opener = opener
        self._cap = cap
        self._pending: tuple[np.ndarray, float] | None = (image, first_ms)
        self._pace = pace and self.fps is not None
        self._loop = loop
        self._policy = reconnect
        if kind == "file":
            declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.declared_frames = int(declared) if math.isfinite(declared) and declared > 0 else None
        if pace and self.fps is None:
            log.warning("%s has no usable fps; realtime pacing is off", name)
        self._start()

    def _capture(self) -> None:
        index = 0
        period = 1.0 / self.fps if self._pace and self.fps else 0.0
        t_start = time.perf_counter()
        consecutive_bad = 0
        while not self._stop.is_set():
            if self._pending is not None:
                (image, ms), self._pending = self._pending, None
                ok = True
            else:
                t0 = time.perf_counter()
                ok, image = self._cap.read()
                ms = (time.perf_counter() - t0) * 1000.0
            if ok:
                bgr = _to_bgr(image)
                if bgr is None:
                    self._bad_frame(f"frame {index} is not an 8-bit image")
                    index += 1
                    consecutive_bad += 1
                    if consecutive_bad < 100:
                        continue
                else:
                    consecutive_bad = 0
                    if period:
                        delay = t_start + index * period - time.perf_counter()
                        if delay > 0 and self._stop.wait(delay):
                            return
                        if delay < -1.0:  # stalled: re-anchor instead of bursting to catch up
                            t_start = time.perf_counter() - index * period
                    if not self._emit(index, bgr, ms):
                        return
                    index += 1
                    continue
            # the read failed: end of file, or a live source dropped out
            if self.kind == "file":
                if self._loop and index > 0 and self._rewind():
                    t_start = time.perf_counter() - index * period
                    continue
                self._check_complete(index)
                return
            pending = self._reconnect()
            if pending is None:
                return
            self._pending = pending

    def _check_complete(self, frames: int) -> None:
        """A file that stops before the frames its container declares is truncated or corrupt: say so."""
        declared = self.declared_frames
        # containers may estimate their count from duration x fps: allow 1% (at least 2 frames)
        if declared is None or frames >= declared - max(2, declared // 100):
            return
        self.ended_early = f"{self.name} ended after {frames} of {declared} frames: the file looks truncated or corrupt"
        log.warning("%s", self.ended_early)

    def _rewind(self) -> bool:
        self._cap.release()
        self._cap = self._opener()
        return bool(self._cap.isOpened())

    def _reconnect(self) -> tuple[np.ndarray, float] | None:
        """Reopen with backoff; the first frame of the new capture, or None when closed/disabled."""
        self._cap.release()
        policy = self._policy
        if policy is None or self._stop.is_set():
            if policy is None:
                log.warning("%s stopped delivering frames (reconnect is off)", self.name)
            return None
        self.reconnecting = True
        log.warning("%s dropped out; reconnecting (giving up after %g s)", self.name, policy.max_reconnect_s)
        start = time.monotonic()
        delay, attempts = policy.initial_s, 0
        while True:
            remaining = policy.max_reconnect_s - (time.monotonic() - start)
            if remaining <= 0:
                raise SourceError(
                    f"{self.name} dropped out and did not come back within {policy.max_reconnect_s:g} s ({attempts} attempts)",
                    hint="check the camera/stream and the network; raise --reconnect-timeout to wait longer",
                )
            if self._stop.wait(min(delay, remaining)):
                return None
            attempts += 1
            cap = self._opener()
            if cap.isOpened():
                t0 = time.perf_counter()
                ok, image = cap.read()
                if ok and image is not None and image.size:
                    self._cap = cap
                    self.stats.reconnects += 1
                    self.reconnecting = False
                    log.info("%s reconnected after %.1f s (%d attempts)", self.name, time.monotonic() - start, attempts)
                    return image, (time.perf_counter() - t0) * 1000.0
            cap.release()
            log.debug("reconnect attempt %d to %s failed", attempts, self.name)
            delay = min(delay * 2.0, policy.max_s)

    def _release(self) -> None:
        self._cap.release()


class ImageSource(Source):
    """Still images, in the given order; unreadable ones are counted as bad frames and skipped."""

    kind = "images"

    def __init__(self, paths: list[Path], *, name: str, queue_size: int = 4) -> None:
        super().__init__(name, live=False, queue_size=queue_size)
        self.paths = list(paths)
        self._start()

    def __len__(self) -> int:
        return len(self.paths)

    def _capture(self) -> None:
        for i, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            t0 = time.perf_counter()
            image = read_image(path)
            ms = (time.perf_counter() - t0) * 1000.0
            if image is None:
                self._bad_frame(f"cannot read image {path}")
                continue
            if not self._emit(i, image, ms, str(path)):
                return


def read_image(path: Path | str) -> np.ndarray | None:
    """Read an image as (H, W, 3) uint8 BGR, or None when it is missing or cannot be decoded."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
        if data.size == 0:
            return None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except (OSError, ValueError, cv2.error):
        return None
    return _to_bgr(image) if image is not None else None


def _to_bgr(image: np.ndarray | None) -> np.ndarray | None:
    if image is None or image.size == 0 or image.dtype != np.uint8:
        return None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image if image.ndim == 3 and image.shape[2] == 3 else None


def _sane_fps(value: float) -> float | None:
    return float(value) if math.isfinite(value) and 0.0 < value <= 1000.0 else None
