"""The run loop: source -> preprocess -> infer -> postprocess -> annotate -> sinks.

What stops a run, and what it leaves behind:

* the source ends (files/images) -> ``stop_reason="end"``;
* ``max_frames`` processed -> ``"max_frames"``;
* ``stop_event`` set (the CLI's SIGINT/SIGTERM handlers, see
  :func:`install_signal_handlers`) -> ``"stop"``, ``interrupted=True``;
* ``KeyboardInterrupt`` inside the loop -> ``"interrupt"``, ``interrupted=True``
  (returned, not raised: the caller exits 130);
* a sink asks to stop (window ``q``/Esc) -> ``"window"``;
* an error -> raised after cleanup (see below).

In every case the ``finally`` closes the source and every sink, so a recorded
video is finalized and the JSONL holds every processed frame.

Fault policy:

* a bad frame (undecodable image, broken video frame) is counted by the source
  (``bad_frames``) and skipped; it never reaches the model;
* a failing sink (disk full, window lost, a callback that raises) stops the run:
  the other sinks are finalized, then a :class:`SinkError` naming the sink and
  the frame is raised. Silently dropping output would break the promise that
  the recording and the JSONL are complete;
* an exception from the model (pre/infer/post) or the annotator is raised as is
  after cleanup: frames are validated before they reach the model, so such an
  error is an engine fault or a bug, which would repeat on every frame.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecv.errors import ConfigError, SinkError
from edgecv.results import FrameResult, StageTimings
from edgecv.stream.sources import Source
from edgecv.stream.stats import LatencyStats

log = logging.getLogger(__name__)

STAGES = ("capture", "pre", "infer", "post", "sink", "total")


def _stage_stats() -> dict[str, LatencyStats]:
    return {s: LatencyStats(s) for s in STAGES}


@dataclass
class RunSummary:
    """What a run did: counts, wall time, per-stage latency, frame age.

    Passed (the same object, updated in place) to the ``status`` callback while
    running, and returned at the end. Rendering is left to the caller: see
    :meth:`stage_rows` and :meth:`to_dict`.

    Attributes:
        frames: frames processed (through every sink).
        dropped: frames the (live) source skipped because the loop was busy.
        bad_frames: frames the source could not decode (skipped).
        reconnects: how often a live source was reopened.
        wall_s: time from the start of the first frame to the end of the last.
        live: the source keeps only the newest frame.
        interrupted: stopped by a signal / ``stop_event`` / Ctrl+C before the source ended.
        stop_reason: ``running``, ``end``, ``max_frames``, ``stop``, ``interrupt``, ``window`` or ``error``.
        reconnecting: the source is reconnecting right now (for a status line).
        expected_frames: frames a video file declares (None for other sources).
        ended_early: why a file source ended before ``expected_frames`` (truncated / corrupt), else None.
        stages: ms per stage: capture, pre, infer, post, sink (annotation + outputs) and total.
        age: ms between capture and the start of inference (live sources).
    """

    source: str = ""
    frames: int = 0
    dropped: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    live: bool = False
    interrupted: bool = False
    stop_reason: str = "running"
    reconnecting: bool = False
    expected_frames: int | None = None
    ended_early: str | None = None
    stages: dict[str, LatencyStats] = field(default_factory=_stage_stats)
    age: LatencyStats = field(default_factory=lambda: LatencyStats("age"))

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time (first frame to last)."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def age_p50(self) -> float | None:
        """Median frame age in ms (live sources only; None otherwise)."""
        return self._age(50)

    @property
    def age_p99(self) -> float | None:
        return self._age(99)

    def _age(self, q: float) -> float | None:
        if not self.live or not self.age.count:
            return None
        return self.age.percentile(q)

    def stage_rows(self) -> list[tuple[str, float, float, float]]:
        """``(stage, mean_ms, p50_ms, p99_ms)`` for capture, pre, infer, post, sink, total (NaN if no frame)."""
        return [(name, st.mean, st.p50, st.p99) for name, st in self.stages.items()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--stats-json``); no NaN (empty stats are null)."""
        return {
            "source": self.source,
            "live": self.live,
            "frames": self.frames,
            "dropped": self.dropped,
            "bad_frames": self.bad_frames,
            "reconnects": self.reconnects,
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 3),
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "expected_frames": self.expected_frames,
            "ended_early": self.ended_early,
            "stages_ms": {name: st.summary() for name, st in self.stages.items()},
            "age_ms": self.age.summary() if self.live else None,
        }


class _Prefetch:
    """Preprocesses the next frame on a worker thread while the current one is in the model.

    Decoding (capture thread) and letterboxing/normalizing (this thread) then
    overlap with inference instead of adding to it; OpenCV and numpy release the
    GIL for that work. File sources: every frame, in order (the worker waits for
    the loop). Live sources: a one-slot mailbox that always holds the newest
    preprocessed frame; an older one that was never used is dropped and counted.
    """

    def __init__(self, source: Any, preprocess: Callable[[np.ndarray], Any]) -> None:
        self._source = source
        self._preprocess = preprocess
        self._live = bool(getattr(source, "is_live", False))
        self._cond = threading.Condition()
        self._item: tuple[Any, Any, Any, float] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="edgecv-preprocess", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._source.read(0.1)
                if frame is None:
                    if self._source.finished:
                        break
                    continue
                start = time.perf_counter()
                feeds, transform = self._preprocess(frame.image)
                item = (frame, feeds, transform, (time.perf_counter() - start) * 1e3)
                with self._cond:
                    if self._live:
                        self.dropped += self._item is not None
                    else:
                        while self._item is not None and not self._stop.is_set():
                            self._cond.wait(0.1)
                    self._item = item
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the loop's thread, which raises it
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def read(self, timeout: float) -> tuple[Any, Any, Any, float] | None:
        """The next (frame, feeds, transform, pre_ms), or None after ``timeout`` s / at the end."""
        with self._cond:
            if self._item is None and not self._done:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is not None:
                self._cond.notify_all()
                return item
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    @property
    def finished(self) -> bool:
        return self._done and self._item is None and self._error is None

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)


def run_pipeline(
    model: Any,
    source: Source,
    sinks: Sequence[Any] = (),
    *,
    max_frames: int | None = None,
    annotate: bool = True,
    annotator: Any = None,
    status: Callable[[RunSummary], None] | None = None,
    stop_event: threading.Event | None = None,
    overlay: bool = True,
    status_interval_s: float = 0.5,
) -> RunSummary:
    """Run ``model`` on every frame of ``source`` and feed the results to ``sinks``.

    Args:
        model: has ``task``, ``names``, ``preprocess(bgr) -> (feeds, transform)``,
            ``infer(feeds) -> outputs`` and ``postprocess(outputs, transform) -> result``.
            With ``gpu_preprocess`` true, ``preprocess`` runs on the loop's thread (not the
            prefetch thread) and ``stage_ms(pre, infer)`` splits the GPU time between them.
        source: from :func:`~edgecv.stream.sources.open_source`; closed at the end.
        sinks: :class:`~edgecv.stream.sinks.Sink` objects; closed at the end. Sinks that
            need no image (``needs_image=False``: JSONL, callback) run after the
            image sinks and see ``timings.sink`` of drawing + image sinks so far.
        max_frames: stop after this many processed frames.
        annotate: draw results (and the FPS overlay) on frames for image sinks.
        annotator: ``annotate(frame, result) -> frame`` (an object with that method, or a
            callable); default ``edgecv.vision.draw.default_annotator(model.task)``
            when available. Draws in place on the frame, which the source never reuses.
        status: called with the running :class:`RunSummary` at most every ``status_interval_s``.
        stop_event: set it (from a signal handler or another thread) to stop after the current frame.
        overlay: draw the FPS / per-stage line with ``edgecv.vision.draw.draw_status``.

    Returns:
        The :class:`RunSummary` (``interrupted`` tells a signal/Ctrl+C stop from a normal end).

    Raises:
        SinkError: a sink failed (the others were finalized first).
        SourceError: a live source did not come back within its reconnect limit.
        ConfigError: invalid arguments.
    """
    if max_frames is not None and max_frames < 0:
        raise ConfigError(f"max_frames must be >= 0, got {max_frames}")
    sinks = list(sinks)
    stop = stop_event if stop_event is not None else threading.Event()
    image_sinks = [s for s in sinks if getattr(s, "needs_image", True)]
    result_sinks = [s for s in sinks if not getattr(s, "needs_image", True)]
    stop_sinks = [s for s in sinks if hasattr(s, "stop_requested")]
    draw = _resolve_annotator(model, annotator) if annotate and image_sinks else None
    draw_status = _resolve_draw_status() if annotate and overlay and image_sinks else None

    summary = RunSummary(source=getattr(source, "name", ""), live=bool(getattr(source, "is_live", False)))
    # GPU preprocessing (TensorRT) runs on this thread, on the engine's stream: the kernel is
    # queued ahead of the network with no extra sync, and its buffers are reused safely
    gpu_pre = bool(getattr(model, "gpu_preprocess", False))
    prefetch = _Prefetch(source, _deferred if gpu_pre else model.preprocess)
    st = summary.stages
    s_cap, s_pre, s_inf, s_post, s_sink, s_total = (st[k] for k in STAGES)
    perf = time.perf_counter
    t_first: float | None = None
    t_last = 0.0
    next_status = perf() + status_interval_s
    period_ema = 0.0
    failed = False
    sink: Any = None
    frame = None
    try:
        while True:
            if stop.is_set():
                summary.stop_reason, summary.interrupted = "stop", True
                break
            if max_frames is not None and summary.frames >= max_frames:
                summary.stop_reason = "max_frames"
                break
            item = prefetch.read(0.1)
            if item is None:
                if prefetch.finished:
                    summary.stop_reason = "end"
                    break
                if status is not None and perf() >= next_status:
                    next_status = perf() + status_interval_s
                    _sync(summary, source, prefetch, t_first, t_last)
                    status(summary)
                continue

            frame, feeds, transform, pre_ms = item
            t1 = perf()
            if t_first is None:
                t_first = t1
            age_ms = (time.time() - frame.timestamp) * 1e3  # capture -> inference start, queues included
            if summary.live:
                summary.age.add(age_ms)
            if gpu_pre:
                feeds, transform = model.preprocess(frame.image)
            t_pre = perf()
            outputs = model.infer(feeds)
            t2 = perf()
            infer_ms = (t2 - t_pre) * 1e3
            if gpu_pre:
                pre_ms, infer_ms = model.stage_ms((t_pre - t1) * 1e3, infer_ms)
            result = model.postprocess(outputs, transform)
            t3 = perf()
            timings = StageTimings(frame.capture_ms, pre_ms, infer_ms, (t3 - t2) * 1e3, 0.0)
            fr = FrameResult(frame.index, frame.timestamp, result, timings, age_ms, frame.path)
            image = frame.image
            if image_sinks:
                if draw is not None:
                    drawn = draw(image, result)
                    if isinstance(drawn, np.ndarray):
                        image = drawn
                if draw_status is not None:
                    fps = 1000.0 / period_ema if period_ema > 0 else 0.0
                    draw_status(image, _status_lines(fps, timings, s_sink.last, summary, source))
                for sink in image_sinks:
                    sink.write(image, fr)
                timings.sink = (perf() - t3) * 1e3
            for sink in result_sinks:
                sink.write(image, fr)
            sink = None
            t4 = perf()
            timings.sink = (t4 - t3) * 1e3

            s_cap.add(timings.capture)
            s_pre.add(timings.pre)
            s_inf.add(timings.infer)
            s_post.add(timings.post)
            s_sink.add(timings.sink)
            s_total.add(timings.total)
            if summary.frames:
                dt = (t4 - t_last) * 1e3
                period_ema = dt if period_ema == 0.0 else 0.9 * period_ema + 0.1 * dt
            summary.frames += 1
            t_last = t4
            if stop_sinks and any(s.stop_requested for s in stop_sinks):
                summary.stop_reason = "window"
                break
            if status is not None and t4 >= next_status:
                next_status = t4 + status_interval_s
                _sync(summary, source, prefetch, t_first, t_last)
                status(summary)
    except KeyboardInterrupt:
        summary.stop_reason, summary.interrupted = "interrupt", True
        log.info("interrupted; finalizing outputs")
    except Exception as exc:
        failed = True
        summary.stop_reason = "error"
        if sink is not None and not isinstance(exc, SinkError):
            raise SinkError(
                f"output {sink!r} failed on frame {frame.index if frame is not None else '?'}: {exc!r}",
                hint="check disk space and permissions of the output path; the other outputs were finalized",
            ) from exc
        raise
    finally:
        prefetch.close()
        _sync(summary, source, prefetch, t_first, t_last)
        _close_all(source, sinks, raise_errors=not failed)
    return summary


def _deferred(image: np.ndarray) -> tuple[None, None]:
    """The prefetch step of a model that preprocesses on the GPU: nothing (the loop does it)."""
    return None, None


def _sync(summary: RunSummary, source: Any, prefetch: _Prefetch, t_first: float | None, t_last: float) -> None:
    stats = source.stats
    summary.dropped = stats.frames_dropped + prefetch.dropped
    summary.bad_frames = stats.bad_frames
    summary.reconnects = stats.reconnects
    summary.reconnecting = bool(getattr(source, "reconnecting", False))
    summary.expected_frames = getattr(source, "declared_frames", None)
    summary.ended_early = getattr(source, "ended_early", None)
    summary.wall_s = (t_last - t_first) if t_first is not None and t_last > t_first else 0.0


def _status_lines(fps: float, t: StageTimings, last_sink: float, summary: RunSummary, source: Any) -> list[str]:
    sink = 0.0 if math.isnan(last_sink) else last_sink
    lines = [f"{fps:5.1f} FPS  infer {t.infer:5.1f} ms", f"pre {t.pre:.1f}  post {t.post:.1f}  sink {sink:.1f} ms"]
    dropped = source.stats.frames_dropped
    if dropped:
        lines.append(f"dropped {dropped}")
    return lines


def _resolve_annotator(model: Any, annotator: Any) -> Callable[[np.ndarray, Any], Any] | None:
    if annotator is None:
        try:
            from edgecv.vision.draw import default_annotator
        except ImportError:
            log.debug("edgecv.vision.draw is not available; frames are not annotated")
            return None
        annotator = default_annotator(model.task)
    fn = getattr(annotator, "annotate", annotator)
    if not callable(fn):
        raise ConfigError(f"annotator must be callable or have annotate(frame, result), got {type(annotator).__name__}")
    return fn


def _resolve_draw_status() -> Callable[[np.ndarray, list[str]], Any] | None:
    try:
        from edgecv.vision.draw import draw_status
    except ImportError:
        log.debug("edgecv.vision.draw.draw_status is not available; no FPS overlay")
        return None
    return draw_status


def _close_all(source: Any, sinks: list[Any], *, raise_errors: bool) -> None:
    """Close the source, then every sink; one failing close never skips the others."""
    errors: list[tuple[Any, BaseException]] = []
    for obj in (source, *sinks):
        try:
            obj.close()
        except Exception as exc:
            log.error("closing %r failed: %s", obj, exc)
            errors.append((obj, exc))
    if errors and raise_errors:
        obj, exc = errors[0]
        if isinstance(exc, SinkError):
            raise exc
        raise SinkError(
            f"closing {obj!r} failed: {exc!r}", hint="check disk space and permissions of the output path"
        ) from exc


@contextmanager
def install_signal_handlers(
    stop_event: threading.Event, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[threading.Event]:
    """Make SIGINT/SIGTERM set ``stop_event`` (so the loop stops cleanly and finalizes outputs).

    A second SIGINT while stopping raises ``KeyboardInterrupt`` (stop now). The
    previous handlers are restored on exit. Outside the main thread (where Python
    cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        log.debug("not in the main thread; signal handlers not installed")
        yield stop_event
        return

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and stop_event.is_set():
            raise KeyboardInterrupt
        log.info("received %s; stopping after the current frame", signal.Signals(signum).name)
        stop_event.set()

    previous: dict[int, Any] = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
        yield stop_event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
