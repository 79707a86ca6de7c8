"""``edgecv run``'s loop: the streaming API (:mod:`edgecv.stream.streaming`) feeding annotation and sinks.

source(s) -> prefetch (preprocess) -> batch -> infer -> postprocess (+ tracker) come from
:class:`~edgecv.stream.streaming.Stream`; this module draws, writes each source's sinks,
reports status and decides how the run ends. :func:`run_pipeline` is one source,
:func:`run_sources` several (each with its own sinks; one batched inference call per batch).

What stops a run, and what it leaves behind:

* the source ends (files/images) -> ``stop_reason="end"``;
* ``max_frames`` processed -> ``"max_frames"``;
* ``stop_event`` set (the CLI's SIGINT/SIGTERM handlers, see
  :func:`install_signal_handlers`) -> ``"stop"``, ``interrupted=True``;
* ``KeyboardInterrupt`` inside the loop -> ``"interrupt"``, ``interrupted=True``
  (returned, not raised: the caller exits 130);
* a sink asks to stop (window ``q``/Esc) -> ``"window"``;
* an error -> raised after cleanup (see below); with several sources, a source that fails
  for good (a camera that did not come back) is dropped instead (``"error"`` in its summary,
  listed in ``StreamSummary.errors``) and the others go on.

In every case the ``finally`` closes the sources and every sink, so a recorded
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
from edgecv.stream.streaming import Stream, StreamConfig, StreamStats
from edgecv.stream.summary import STAGES, RunSummary

__all__ = ["STAGES", "RunSummary", "StreamSummary", "install_signal_handlers", "run_pipeline", "run_sources"]

log = logging.getLogger(__name__)


@dataclass
class StreamSummary:
    """A run over several sources: one :class:`RunSummary` per source and the batching counters."""

    sources: list[RunSummary]
    batching: StreamStats
    errors: dict[int, BaseException] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return any(s.interrupted for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--stats-json`` with several sources)."""
        return {
            "sources": [{**s.to_dict(), "error": str(self.errors[i]).splitlines()[0] if i in self.errors else None} for i, s in enumerate(self.sources)],
            "batching": self.batching.to_dict(),
        }


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

    A consumer of :class:`~edgecv.stream.streaming.Stream` with one source (see :func:`run_sources`).

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
    config = StreamConfig(max_frames=max_frames, drop_failed_sources=False)
    each = (lambda summaries: status(summaries[0])) if status is not None else None
    result = run_sources(
        model, [source], [sinks], config, annotate=annotate, annotator=annotator, status=each,
        stop_event=stop_event, overlay=overlay, status_interval_s=status_interval_s,
    )
    return result.sources[0]


def run_sources(
    model: Any,
    sources: Sequence[Any],
    sinks: Sequence[Sequence[Any]] = (),
    config: StreamConfig | None = None,
    *,
    annotate: bool = True,
    annotator: Any = None,
    status: Callable[[list[RunSummary]], None] | None = None,
    stop_event: threading.Event | None = None,
    overlay: bool = True,
    status_interval_s: float = 0.5,
) -> StreamSummary:
    """Run ``model`` on several sources in batches; each source's results go to its own sinks.

    Args:
        sources: started sources or specs (see :class:`~edgecv.stream.streaming.Stream`); closed at the end.
        sinks: one sequence of sinks per source (``sinks[i]`` gets source ``i``'s frames), or empty.
        config: a :class:`~edgecv.stream.streaming.StreamConfig` (batch timeout, max frames, tracker ...).
        status: called with the per-source summaries at most every ``status_interval_s``.
        Other arguments as in :func:`run_pipeline`.

    Returns:
        The :class:`StreamSummary`. With several sources a source that failed for good was
        dropped and is listed in ``errors`` (its summary's ``stop_reason`` is ``"error"``).

    Raises:
        SinkError, SourceError, ConfigError: as :func:`run_pipeline`.
    """
    lanes_sinks = [list(s) for s in sinks] if sinks else [[] for _ in sources]
    all_sinks = [s for group in lanes_sinks for s in group]
    try:
        if len(lanes_sinks) != len(sources):
            raise ConfigError(f"{len(sources)} sources but {len(lanes_sinks)} groups of sinks", hint="give one (possibly empty) group of sinks per source")
        stop = stop_event if stop_event is not None else threading.Event()
        need_draw = annotate and any(getattr(s, "needs_image", True) for s in all_sinks)
        draw = _resolve_annotator(model, annotator) if need_draw else None
        draw_status = _resolve_draw_status() if need_draw and overlay else None
    except BaseException:
        _close_all(sources, all_sinks, raise_errors=False)
        raise
    consumer = _Consumer(lanes_sinks, draw, draw_status)
    perf = time.perf_counter
    next_status = perf() + status_interval_s
    stream: Stream | None = None
    failed = False

    def report() -> None:
        nonlocal next_status
        if status is not None and stream is not None and perf() >= next_status:
            next_status = perf() + status_interval_s
            status(stream.summaries)

    try:
        stream = Stream(model, list(sources), config, stop_event=stop, on_idle=report)
        summaries = [lane.summary for lane in stream.lanes]
        try:
            with stream:
                for fr in stream:
                    consumer.write(fr, summaries[fr.source_index])
                    if consumer.stop_requested():
                        for s in summaries:
                            s.stop_reason = "window"
                        break
                    report()
        except KeyboardInterrupt:  # in the model (the stream marked it) or in a sink (close() said "stop")
            for s in summaries:
                if s.stop_reason in ("running", "stop"):
                    s.stop_reason, s.interrupted = "interrupt", True
            log.info("interrupted; finalizing outputs")
        return StreamSummary(stream.summaries, stream.stats, stream.errors)
    except Exception as exc:
        failed = True
        if consumer.sink is not None and not isinstance(exc, SinkError):
            fr = consumer.frame
            raise SinkError(
                f"output {consumer.sink!r} failed on frame {fr.index if fr is not None else '?'}: {exc!r}",
                hint="check disk space and permissions of the output path; the other outputs were finalized",
            ) from exc
        raise
    finally:
        _close_all(stream.sources if stream is not None else sources, all_sinks, raise_errors=not failed)


class _Consumer:
    """Draws and writes one frame result to its source's sinks, keeping per-source overlay state."""

    def __init__(self, sinks: list[list[Any]], draw: Any, draw_status: Any) -> None:
        self.image_sinks = [[s for s in group if getattr(s, "needs_image", True)] for group in sinks]
        self.result_sinks = [[s for s in group if not getattr(s, "needs_image", True)] for group in sinks]
        self.stop_sinks = [s for group in sinks for s in group if hasattr(s, "stop_requested")]
        self.draw = draw
        self.draw_status = draw_status
        self.period_ema = [0.0] * len(sinks)
        self.t_last = [0.0] * len(sinks)
        self.last_sink = [math.nan] * len(sinks)
        self.sink: Any = None
        self.frame: FrameResult | None = None

    def write(self, fr: FrameResult, summary: RunSummary) -> None:
        perf = time.perf_counter
        i = fr.source_index
        t3 = perf()
        self.frame = fr
        image = fr.frame
        timings = fr.timings
        if self.image_sinks[i] and image is not None:
            if self.draw is not None:
                drawn = self.draw(image, fr.result)
                if isinstance(drawn, np.ndarray):
                    image = drawn
            if self.draw_status is not None:
                ema = self.period_ema[i]
                fps = 1000.0 / ema if ema > 0 else 0.0
                self.draw_status(image, _status_lines(fps, timings, self.last_sink[i], summary))
            for sink in self.image_sinks[i]:
                self.sink = sink  # named in the SinkError if it fails
                sink.write(image, fr)
            timings.sink = (perf() - t3) * 1e3
        for sink in self.result_sinks[i]:
            self.sink = sink
            sink.write(image, fr)
        self.sink = None
        t4 = perf()
        self.last_sink[i] = (t4 - t3) * 1e3
        if self.t_last[i]:
            dt = (t4 - self.t_last[i]) * 1e3
            self.period_ema[i] = dt if self.period_ema[i] == 0.0 else 0.9 * self.period_ema[i] + 0.1 * dt
        self.t_last[i] = t4

    def stop_requested(self) -> bool:
        return any(s.stop_requested for s in self.stop_sinks)


def _status_lines(fps: float, t: StageTimings, last_sink: float, summary: RunSummary) -> list[str]:
    sink = 0.0 if math.isnan(last_sink) else last_sink
    lines = [f"{fps:5.1f} FPS  infer {t.infer:5.1f} ms", f"pre {t.pre:.1f}  post {t.post:.1f}  sink {sink:.1f} ms"]
    if summary.dropped:
        lines.append(f"dropped {summary.dropped}")
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


def _close_all(sources: Sequence[Any], sinks: list[Any], *, raise_errors: bool) -> None:
    """Close the sources, then every sink; one failing close never skips the others."""
    errors: list[tuple[Any, BaseException]] = []
    for obj in (*(s for s in sources if hasattr(s, "close")), *sinks):
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
