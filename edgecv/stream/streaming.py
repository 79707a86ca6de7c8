"""The streaming API: the one real-time loop, as an iterator of :class:`~edgecv.results.FrameResult`.

    import edgecv
    model = edgecv.load("models/shapes-det.onnx")
    with edgecv.stream(model, ["rtsp://cam0/s", "rtsp://cam1/s"]) as results:
        for r in results:                 # r.source_index, r.index, r.timestamp, r.frame, r.result, r.timings
            ...                           # breaking out is fine: threads are joined, sources closed

``edgecv run``, ``run_pipeline`` and ``edgecv bench --loop`` consume this loop;
it is never copied. Per source: a capture thread (newest frame for live sources,
every frame for files; reconnect with backoff) and a prefetch worker
(:mod:`edgecv.stream.batching`); on the consumer's thread: a batcher that takes
the newest frame of each source up to ``batch_timeout_ms``, one inference call
per batch (:meth:`edgecv.api.Model.infer_batch`), postprocessing and the
source's own tracker, then the results, in source order.

Inference runs on the thread that iterates (TensorRT contexts and GPU
preprocessing are per thread), or, with ``inflight`` > 1, on that many worker
threads of the stream's own (a fixed pool, so per-thread state is reused), while
the iterating thread postprocesses and yields the earlier batches in order;
:meth:`Stream.start` runs the loop on a thread of its own and calls a callback,
for code that cannot iterate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.errors import ConfigError, SourceError
from edgecv.results import Detections, FrameResult, StageTimings
from edgecv.stream.batching import Batcher, Prefetch
from edgecv.stream.summary import RunSummary
from edgecv.track import ByteTrack, TrackConfig

log = logging.getLogger(__name__)


def _READY_NOW() -> bool:  # noqa: N802 (a constant predicate): take only what is ready, never wait
    return True


SourceSpec = Any  # a started Source, or what open_source accepts (path, URL, pipeline, camera index)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """How :class:`Stream` runs.

    Attributes:
        max_frames: stop each source after this many frames (None: until it ends).
        batch_timeout_ms: with several sources, how long the batcher waits for the others once
            one source has a frame (DeepStream nvstreammux's ``batched-push-timeout``); a source
            that misses it joins a later batch. About one frame period of the cameras is right.
        max_batch: at most this many frames per inference call (None: one per source).
        track: True or a :class:`~edgecv.track.TrackConfig`: one ByteTrack per source, stepped in
            frame order (detections get ``tracker_id``). A model loaded with ``track=`` asks for
            the same (its tracker's config is used, one tracker per source).
        tracker_factory: makes one tracker per source (``update(detections) -> detections``),
            stepped in frame order, instead of ``track``; None: no tracking.
        drop_failed_sources: a source that fails for good (a camera that did not come back within
            its reconnect limit) is logged, recorded in its summary and dropped while the others go
            on; None means yes with several sources, no (raise) with one.
        keep_frames: put the captured image in :attr:`FrameResult.frame`.
        prefetch: live sources: ``"just-in-time"`` takes each frame shortly before the loop will
            want it (fresh frames; see ``scripts/bench_prefetch_age.py``), ``"eager"`` as soon as
            the previous one was taken (the frame then waits about one inference period).
        inflight: batches inferred at once, each on its own worker thread, while the loop
            postprocesses and delivers the earlier ones in order (trackers still step in frame
            order). 1 (the default) infers on the iterating thread. More raises throughput where
            one inference call cannot keep the machine busy (ONNX Runtime on a few CPU cores: two
            single-threaded calls beat one two-threaded call; see :mod:`edgecv.stream.policy`) at
            the cost of each frame's latency; load the model with ``threads`` = cores / inflight.
        realtime, max_reconnect_s, open_timeout_s, loop: how sources given as specs are opened
            (see :func:`~edgecv.stream.sources.open_source`).
    """

    max_frames: int | None = None
    batch_timeout_ms: float = 33.0
    max_batch: int | None = None
    track: bool | TrackConfig = False
    tracker_factory: Callable[[], Any] | None = None
    drop_failed_sources: bool | None = None
    keep_frames: bool = True
    prefetch: str = "just-in-time"
    inflight: int = 1
    realtime: bool = False
    max_reconnect_s: float = 30.0
    open_timeout_s: float = 5.0
    loop: bool = False

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 0:
            raise ConfigError(f"max_frames must be >= 0, got {self.max_frames}", hint="use a positive count, or None for no limit")
        if not self.batch_timeout_ms >= 0:
            raise ConfigError(f"batch_timeout_ms must be >= 0, got {self.batch_timeout_ms}", hint="e.g. 33 for 30 fps cameras")
        if self.max_batch is not None and self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {self.max_batch}", hint="1 infers frame by frame; leave it out for one frame per source")
        if self.tracker_factory is not None and not callable(self.tracker_factory):
            raise ConfigError(f"tracker_factory must be callable (it makes one tracker per source), got {self.tracker_factory!r}")
        if not isinstance(self.track, (bool, TrackConfig)):
            raise ConfigError(f"track must be True, False or a TrackConfig, got {type(self.track).__name__}", hint="track=True")
        if self.track is not False and self.tracker_factory is not None:
            raise ConfigError("track and tracker_factory both ask for a tracker", hint="pass one of them")
        if isinstance(self.inflight, bool) or not isinstance(self.inflight, int) or self.inflight < 1:
            raise ConfigError(f"inflight must be an integer >= 1, got {self.inflight!r}", hint="1 infers frame by frame on the loop's thread; 2 overlaps two inferences")
        if self.prefetch not in ("just-in-time", "eager"):
            raise ConfigError(f"prefetch must be 'just-in-time' or 'eager', got {self.prefetch!r}", hint="just-in-time gives fresher frames from live sources")
        if self.max_reconnect_s < 0 or self.open_timeout_s <= 0:
            raise ConfigError(
                f"invalid source timeouts: max_reconnect_s={self.max_reconnect_s}, open_timeout_s={self.open_timeout_s}",
                hint="use max_reconnect_s >= 0 and open_timeout_s > 0",
            )


@dataclass
class StreamStats:
    """Batching counters of a stream: batches formed, frames in them, inference calls made."""

    batches: int = 0
    frames: int = 0
    infer_calls: int = 0

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "frames": self.frames, "infer_calls": self.infer_calls, "mean_batch": round(self.mean_batch, 3)}


class _Lane:
    """One source's state inside the stream."""

    def __init__(self, index: int, source: Any, prefetch: Prefetch, tracker: Any, summary: RunSummary) -> None:
        self.index = index
        self.source = source
        self.prefetch = prefetch
        self.tracker = tracker
        self.summary = summary
        self.taken = 0
        self.done = False
        self.error: BaseException | None = None
        self.t_first: float | None = None
        self.t_last = 0.0

    def sync(self) -> None:
        s, stats = self.summary, self.source.stats
        s.dropped = stats.frames_dropped + self.prefetch.dropped
        s.bad_frames = stats.bad_frames
        s.reconnects = stats.reconnects
        s.reconnecting = bool(getattr(self.source, "reconnecting", False))
        s.expected_frames = getattr(self.source, "declared_frames", None)
        s.ended_early = getattr(self.source, "ended_early", None)
        s.wall_s = (self.t_last - self.t_first) if self.t_first is not None and self.t_last > self.t_first else 0.0


class _InFlight:
    """One batch being inferred: run on a worker (or inline), its result read back in order."""

    def __init__(self, batch: list[tuple[_Lane, Any]], wall0: float) -> None:
        self.batch = batch
        self.wall0 = wall0  # wall clock when the batch was taken (frame age is measured to here)
        self.t_start = 0.0
        self.future: Future[tuple[list[Any], float, int]] | None = None
        self._value: tuple[list[Any], float, int] | None = None

    def run(self, stream: Stream) -> tuple[list[Any], float, int]:
        self.t_start = time.perf_counter()
        self._value = stream._infer(self.batch)
        return self._value

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def result(self) -> tuple[list[Any], float, int]:
        if self.future is not None:
            return self.future.result()
        assert self._value is not None
        return self._value


class Stream:
    """Runs ``model`` on one or several sources; iterate it for :class:`FrameResult` objects.

    Args:
        model: from :func:`edgecv.load` (or anything with ``preprocess``, ``infer``,
            ``postprocess``; ``infer_batch`` is used when present).
        sources: one source or a sequence of them: started :class:`~edgecv.stream.capture.Source`
            objects or specs for :func:`~edgecv.stream.sources.open_source`. The stream owns them
            from now on and closes them all when it stops.
        config: a :class:`StreamConfig`.
        stop_event: set it (from a signal handler or another thread) to stop after the current frame.
        on_idle: called about every 0.1 s while no source has a frame (status lines, stop checks).

    Raises:
        SourceError: a source cannot be opened (those already opened are closed first).
        ConfigError: invalid arguments.
    """

    def __init__(
        self,
        model: Any,
        sources: SourceSpec | Sequence[SourceSpec],
        config: StreamConfig | None = None,
        *,
        stop_event: threading.Event | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config if config is not None else StreamConfig()
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._on_idle = on_idle
        self.stats = StreamStats()
        specs = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        if not specs:
            raise ConfigError("no source given", hint="pass a path, URL, pipeline or camera index, or a list of them")
        self._gpu_pre = bool(getattr(model, "gpu_preprocess", False))
        self._batcher = Batcher(self.config.batch_timeout_ms / 1e3)
        self._closed = False
        self._iterating = False
        self._last_lane = -1
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        # batches taken and not yet delivered, in take order; with inflight > 1 the loop's thread and
        # the workers take batches (under _take_lock), the loop's thread delivers them
        self._pending: deque[_InFlight] = deque()
        self._take_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._running = 0
        self._ended = False
        self.lanes: list[_Lane] = []
        opened: list[Any] = []
        tracker_factory = self._tracker_factory(model)
        try:
            for spec in specs:
                opened.append(spec if hasattr(spec, "read") and hasattr(spec, "stats") else self._open(spec))
            for i, src in enumerate(opened):
                # GPU preprocessing (TensorRT) runs on the inference thread, on the engine's stream
                prefetch = Prefetch(
                    src, None if self._gpu_pre else model.preprocess, self._batcher.wake,
                    just_in_time=self.config.prefetch == "just-in-time",
                )
                tracker = tracker_factory() if tracker_factory is not None else None
                summary = RunSummary(source=getattr(src, "name", str(i)), live=bool(getattr(src, "is_live", False)))
                self.lanes.append(_Lane(i, src, prefetch, tracker, summary))
        except BaseException:
            for lane in self.lanes:
                lane.prefetch.close()
            for src in opened:
                src.close()
            raise
        drop = self.config.drop_failed_sources
        self._drop_failed = len(self.lanes) > 1 if drop is None else drop

    def _tracker_factory(self, model: Any) -> Callable[[], Any] | None:
        """What makes each source's tracker: the config's, or ByteTrack for ``track``/a tracking model."""
        if self.config.tracker_factory is not None:
            return self.config.tracker_factory
        track = self.config.track
        model_tracker = getattr(model, "tracker", None)
        if track is False and model_tracker is None:
            return None
        if getattr(model, "task", "detect") != "detect":
            raise ConfigError(f"tracking needs a detection model; this one is a {model.task} model", hint="drop tracking (--track / track=True)")
        cfg = track if isinstance(track, TrackConfig) else getattr(model_tracker, "config", None)
        return lambda: ByteTrack(cfg)

    def _open(self, spec: SourceSpec) -> Any:
        from edgecv.stream.sources import open_source

        c = self.config
        return open_source(
            spec if isinstance(spec, (int, Path)) else str(spec),
            realtime=c.realtime, max_reconnect_s=c.max_reconnect_s, open_timeout_s=c.open_timeout_s, loop=c.loop,
        )

    # -- public ------------------------------------------------------------------------------
    @property
    def summaries(self) -> list[RunSummary]:
        """One :class:`RunSummary` per source (updated while running)."""
        for lane in self.lanes:
            lane.sync()
        return [lane.summary for lane in self.lanes]

    @property
    def sources(self) -> list[Any]:
        return [lane.source for lane in self.lanes]

    @property
    def errors(self) -> dict[int, BaseException]:
        """Sources that failed for good and were dropped (index -> error)."""
        return {lane.index: lane.error for lane in self.lanes if lane.error is not None}

    def stop(self) -> None:
        """Ask the loop to stop after the current batch (thread-safe)."""
        self._stop.set()
        self._batcher.wake()

    def __iter__(self) -> Iterator[FrameResult]:
        if self._iterating or self._closed:
            raise ConfigError("a stream can be iterated once", hint="open a new stream (edgecv.stream(...)) to run again")
        self._iterating = True
        return self._loop()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, callback: Callable[[FrameResult], Any]) -> list[RunSummary]:
        """Call ``callback(frame_result)`` for every frame on this thread; it returns False to stop.

        Returns the per-source summaries once the sources ended or the stream was stopped.
        """
        with self:
            for fr in self:
                if callback(fr) is False:
                    self._stop.set()
                    break
        return self.summaries

    def start(self, callback: Callable[[FrameResult], Any]) -> Stream:
        """Run :meth:`run` on a background thread (inference happens there); :meth:`join` or :meth:`close` it."""
        if self._thread is not None:
            raise ConfigError("this stream was already started")

        def target() -> None:
            try:
                self.run(callback)
            except BaseException as exc:  # re-raised by join()
                self._thread_error = exc

        self._thread = threading.Thread(target=target, name="edgecv-stream", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> list[RunSummary]:
        """Wait for a :meth:`start`-ed stream to finish; re-raises the error that ended it, if any."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the stream is still running after {timeout} s")
        if self._thread_error is not None:
            err, self._thread_error = self._thread_error, None
            raise err
        return self.summaries

    def close(self) -> None:
        """Stop, join every thread and close every source. Idempotent; safe from any thread."""
        self._stop.set()
        self._batcher.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if self._closed:
            return
        self._closed = True
        for lane in self.lanes:
            lane.prefetch.close()
        for lane in self.lanes:
            if lane.summary.stop_reason == "running":  # the consumer stopped early (or close() from outside)
                lane.summary.stop_reason, lane.summary.interrupted = "stop", True
            try:
                lane.source.close()
            except Exception as exc:
                log.error("closing %r failed: %s", lane.source, exc)
            lane.sync()

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> Iterator[FrameResult]:
        perf = time.perf_counter
        cfg = self.config
        t_batch: float | None = None
        last: list[_Lane] = []
        pool = ThreadPoolExecutor(cfg.inflight, thread_name_prefix="edgecv-infer") if cfg.inflight > 1 else None
        pending = self._pending
        try:
            while True:
                if not self._ended and not self._stop.is_set() and len(pending) < cfg.inflight:
                    if t_batch is not None:  # the loop's busy time since it took the last batch (no waiting)
                        busy_ms = (perf() - t_batch) * 1e3
                        for lane in last:
                            lane.prefetch.note_busy(busy_ms)
                        t_batch = None
                    with self._take_lock:  # batches are taken here or by a worker that just finished one
                        batch = self._collect(until=pending[0].done if pending else None)
                        if batch is None:
                            self._ended = True
                        elif batch:
                            t_batch, last = perf(), [lane for lane, _ in batch]
                            self._submit(batch, pool)
                    if batch:
                        continue  # fill the pipeline before delivering
                    if batch is not None and not pending:
                        if self._on_idle is not None:
                            self._on_idle()
                        continue
                if not pending:
                    with self._take_lock:  # a worker may be taking one right now: it is in pending once this is free
                        if not pending:
                            break
                    continue
                for fr, lane in self._finish(pending.popleft()):  # a stop takes effect after the batches in flight
                    t_yield = perf()
                    try:
                        yield fr
                    finally:  # also when the consumer breaks out on this frame: it was delivered
                        lane.t_last = perf()
                        fr.timings.sink = (lane.t_last - t_yield) * 1e3  # what the consumer did with it
                        self._record(lane, fr)
            for lane in self.lanes:
                s = lane.summary
                if s.stop_reason == "running":
                    if self._stop.is_set():
                        s.stop_reason, s.interrupted = "stop", True
                    elif cfg.max_frames is not None and lane.taken >= cfg.max_frames:
                        s.stop_reason = "max_frames"
                    else:
                        s.stop_reason = "end"
        except BaseException as exc:  # GeneratorExit: the consumer broke out of its loop
            reason = {KeyboardInterrupt: "interrupt", GeneratorExit: "stop"}.get(type(exc), "error")
            for lane in self.lanes:
                if lane.summary.stop_reason == "running":
                    lane.summary.stop_reason = reason
                    lane.summary.interrupted = reason != "error"
            raise
        finally:
            if pool is not None:  # no inference may outlive the loop: the caller closes the model next
                pool.shutdown(wait=True, cancel_futures=True)
            self.close()

    def _active(self) -> list[_Lane]:
        m = self.config.max_frames
        for lane in self.lanes:
            if not lane.done and m is not None and lane.taken >= m:
                lane.done = True
                lane.summary.stop_reason = "max_frames"
        return [lane for lane in self.lanes if not lane.done]

    def _collect(self, until: Callable[[], bool] | None = None) -> list[tuple[_Lane, Any]] | None:
        """The next batch: [(lane, Prepared)]; [] when nothing came within the idle tick (or once
        ``until()`` is true: an inference in flight finished first); None at the end."""
        active = self._active()
        if not active:
            return None
        ready = self._batcher.wait_ready([lane.prefetch for lane in active], self._stop, until=until)
        batch: list[tuple[_Lane, Any]] = []
        limit = self.config.max_batch
        if limit is not None and len(ready) > limit:  # round robin, so no source waits behind the others
            first = next((k for k, i in enumerate(ready) if active[i].index > self._last_lane), 0)
            ready = ready[first:] + ready[:first]
        for i in ready:
            lane = active[i]
            try:
                item = lane.prefetch.handoff.get(0)
            except SourceError as exc:
                self._fail(lane, exc)
                continue
            if item is None:
                if lane.prefetch.handoff.finished:
                    lane.done = True
                    lane.summary.stop_reason = "end"
                continue
            batch.append((lane, item))
            lane.taken += 1
            self._last_lane = lane.index
            if limit is not None and len(batch) >= limit:
                break
        if not batch and not any(not lane.done for lane in self.lanes):
            return None
        return batch

    def _fail(self, lane: _Lane, exc: BaseException) -> None:
        if not self._drop_failed:
            raise exc
        lane.done, lane.error = True, exc
        lane.summary.stop_reason = "error"
        log.error("source %d (%s) failed and was dropped; the others go on: %s", lane.index, lane.summary.source, exc)

    def _submit(self, batch: list[tuple[_Lane, Any]], pool: ThreadPoolExecutor | None) -> None:
        """Queue ``batch`` (with :attr:`_take_lock` held: queue order is take order) and start inferring
        it: on a worker of ``pool``, or here (no pool) before returning."""
        flight = _InFlight(batch, time.time())
        if pool is None:
            self._pending.append(flight)
            flight.run(self)
            return
        flight.future = Future()  # set by the worker; in place before the loop's thread can see the flight
        flight.future.add_done_callback(lambda _: self._batcher.wake())  # a waiting _collect delivers it first
        self._pending.append(flight)
        with self._count_lock:
            self._running += 1
        pool.submit(self._work, flight, pool)

    def _work(self, flight: _InFlight, pool: ThreadPoolExecutor) -> None:
        """A worker's task: infer ``flight``, then take the next batch if one is ready (queued on this
        same pool, so this thread picks it up as soon as it returns) instead of leaving the core idle
        until the loop's thread comes round to it. Measured on a 2-core machine (YOLOv8n-size, 2 in
        flight) before this refill: the workers sat idle 9-10% of the time between batches."""
        assert flight.future is not None
        try:
            value = flight.run(self)
        except BaseException as exc:  # raised by the loop's thread when it delivers this batch
            flight.future.set_exception(exc)
        else:
            flight.future.set_result(value)
        finally:
            with self._count_lock:
                self._running -= 1
                room = self._running < self.config.inflight
            # at most one inflight's worth of finished batches waits for the consumer (bounded read-ahead)
            if room and len(self._pending) < 2 * self.config.inflight and self._take_lock.acquire(blocking=False):
                try:
                    if not self._ended and not self._stop.is_set() and not self._closed:
                        batch = self._collect(until=_READY_NOW)
                        if batch is None:
                            self._ended = True
                        elif batch:
                            self._submit(batch, pool)
                except BaseException as exc:  # delivered in order by the loop's thread
                    failed = _InFlight([], time.time())
                    failed.future = Future()
                    failed.future.set_exception(exc)
                    self._pending.append(failed)
                    self._batcher.wake()
                finally:
                    self._take_lock.release()

    def _infer(self, batch: list[tuple[_Lane, Any]]) -> tuple[list[Any], float, int]:
        """Preprocess (GPU) and infer ``batch`` on the calling thread: (outputs, infer ms, engine calls)."""
        model, perf = self.model, time.perf_counter
        if self._gpu_pre:  # on this thread: the kernel runs on this thread's engine stream
            for _, item in batch:
                t = perf()
                item.feeds, item.transform = model.preprocess(item.frame.image)
                item.pre_ms = (perf() - t) * 1e3
        t1 = perf()
        feeds = [item.feeds for _, item in batch]
        infer_batch = getattr(model, "infer_batch", None)
        if len(batch) > 1 and infer_batch is not None:
            outputs = infer_batch(feeds)
            calls = getattr(model, "last_batch_calls", 1)
        else:
            outputs = [model.infer(f) for f in feeds]
            calls = len(feeds)
        infer_ms = (perf() - t1) * 1e3  # the call(s) this frame waited for
        if self._gpu_pre:
            for _, item in batch:
                item.pre_ms, item.gpu_infer_ms = model.stage_ms(item.pre_ms, infer_ms)
        return outputs, infer_ms, calls

    def _finish(self, flight: _InFlight) -> list[tuple[FrameResult, _Lane]]:
        """Postprocess (and track) a batch whose inference is done, on the loop's thread, in frame order."""
        model, perf = self.model, time.perf_counter
        outputs, infer_ms, calls = flight.result()
        self.stats.infer_calls += calls
        self.stats.batches += 1
        self.stats.frames += len(flight.batch)
        results: list[tuple[FrameResult, _Lane]] = []
        for (lane, item), out in zip(flight.batch, outputs):
            frame = item.frame
            age_ms = (flight.wall0 - frame.timestamp) * 1e3  # capture -> start of this batch, queues included
            pre_ms, inf_ms = item.pre_ms, infer_ms
            if self._gpu_pre:
                inf_ms = item.gpu_infer_ms
            t3 = perf()
            result = model.postprocess(out, item.transform)
            if lane.tracker is not None and isinstance(result, Detections):
                result = lane.tracker.update(result)
            post_ms = (perf() - t3) * 1e3
            timings = StageTimings(frame.capture_ms, pre_ms, inf_ms, post_ms, 0.0)
            if lane.t_first is None:
                lane.t_first = flight.t_start
            if lane.summary.live:
                lane.summary.age.add(age_ms)
            fr = FrameResult(
                frame.index, frame.timestamp, result, timings, age_ms, frame.path,
                source=lane.summary.source, source_index=lane.index,
                frame=frame.image if self.config.keep_frames else None,
            )
            results.append((fr, lane))
        return results

    def _record(self, lane: _Lane, fr: FrameResult) -> None:
        st, t = lane.summary.stages, fr.timings
        st["capture"].add(t.capture)
        st["pre"].add(t.pre)
        st["infer"].add(t.infer)
        st["post"].add(t.post)
        st["sink"].add(t.sink)
        st["total"].add(t.total)
        lane.summary.frames += 1
        lane.sync()


def open_stream(
    model: Any,
    sources: SourceSpec | Sequence[SourceSpec],
    config: StreamConfig | None = None,
    *,
    callback: Callable[[FrameResult], Any] | None = None,
    stop_event: threading.Event | None = None,
    **options: Any,
) -> Stream:
    """``edgecv.stream(model, sources, ...)``: a :class:`Stream` (iterate it, or use it as a context manager).

    ``options`` are :class:`StreamConfig` fields (``max_frames=``, ``batch_timeout_ms=``,
    ``tracker_factory=`` ...), an alternative to passing ``config``. With ``callback`` the loop
    starts at once on a background thread that calls it for each frame (see :meth:`Stream.start`).
    """
    if config is not None and options:
        raise ConfigError(f"pass either config or options {sorted(options)}, not both")
    if options:
        try:
            config = StreamConfig(**options)
        except TypeError as exc:
            import difflib
            import typing

            bad = str(exc).split("'")[1] if "'" in str(exc) else "?"
            close = difflib.get_close_matches(bad, typing.get_type_hints(StreamConfig).keys(), n=1)
            raise ConfigError(f"unknown stream option {bad!r}", hint=f"did you mean {close[0]!r}?" if close else "see StreamConfig") from exc
    stream = Stream(model, sources, config, stop_event=stop_event)
    if callback is not None:
        stream.start(callback)
    return stream
