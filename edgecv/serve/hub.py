"""The mailbox between the run loop and the server: one :class:`Channel` per source, keyed by source id.

The inference thread only ever does two cheap things here, through :class:`PreviewSink`:
it replaces the channel's newest ``(frame, result)`` (one attribute store) and appends a
tuple of timings to a deque. It takes no lock that a server thread can hold for long,
never encodes and never waits, so a slow, stalled or vanished browser cannot slow it.

Everything else happens on server threads:

* one encoder thread per channel draws the boxes (on a copy) and encodes a JPEG, only
  while at least one viewer is connected, at most ``max_fps`` times a second, and only
  the newest frame (frames that arrive in between are never touched);
* the stats thread drains the timings deque into rolling percentiles (and the
  Prometheus histograms) every half second, and whenever a figure is asked for.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from edgecv.errors import ConfigError
from edgecv.results import FrameResult
from edgecv.stream.stats import LatencyStats

log = logging.getLogger(__name__)

STAGES = ("capture", "pre", "infer", "post", "sink", "total")
_SAMPLES_MAX = 16384  # timings waiting to be drained (every 0.5 s): room for 30,000 FPS
_SETTLE_S = 0.02
_FPS_WINDOW_S = 2.0

Annotate = Callable[[np.ndarray, Any], Any]
Counters = Callable[[], Mapping[str, Any]]


def model_info(model: Any) -> dict[str, Any]:
    """What the page and ``edgecv_model_info`` show about a loaded model (any missing field is ``""``)."""
    meta = getattr(model, "meta", None)
    engine = getattr(model, "engine", None)
    size = getattr(meta, "input_size", None)
    path = getattr(model, "path", None)
    return {
        "name": getattr(path, "name", "") or "",
        "task": getattr(model, "task", "") or "",
        "precision": getattr(meta, "precision", "") or "",
        "backend": getattr(engine, "backend", "") or "",
        "input_size": f"{size[1]}x{size[0]}" if size else "",  # width x height, as people say it
        "classes": len(getattr(model, "names", ()) or ()),
    }


class Channel:
    """One source's mailbox, encoder and figures. Create through :meth:`Hub.channel`."""

    def __init__(self, hub: Hub, source_id: str, *, source: str = "", model: Mapping[str, Any] | None = None,
                 annotate: Annotate | None = None, live: bool | None = None) -> None:
        self.hub = hub
        self.id = source_id
        self.source = source
        self.model = dict(model or {})
        self.annotate = annotate
        # written by the loop thread only
        self.frames = 0
        self._latest: tuple[int, np.ndarray, Any] | None = None
        self._samples: deque[tuple[float, Any, float]] = deque(maxlen=_SAMPLES_MAX)
        self._counters: Counters | None = None
        # server side
        self._stats_lock = threading.Lock()
        self.stages = {s: LatencyStats(s, window=1000) for s in STAGES}
        self.age = LatencyStats("age", window=1000)
        self.live = live  # None: unknown (frame ages are recorded); False: a file, whose "age" is read-ahead time
        self._stamps: deque[float] = deque()
        self.last_write = 0.0  # time.time() of the newest frame
        self._viewers = 0
        self._wake = threading.Event()
        self._jpeg_cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self.encoded = 0
        self._encode_failed = False
        self._encoder: threading.Thread | None = None

    # ---- the loop's side (cheap, never blocks) ----
    def offer(self, frame: np.ndarray, result: FrameResult) -> None:
        """Publish the newest frame and its timings. Called on the inference thread.

        ``frame`` is kept by reference, not copied: the run loop never reuses a frame array
        after handing it to the sinks. The encoder draws on a copy.
        """
        self.frames += 1
        self._latest = (self.frames, frame, result.result)
        # the timings object itself: the loop sets its ``sink`` time after the sinks return
        self._samples.append((time.time(), result.timings, result.age_ms))
        if self._viewers:
            self._wake.set()

    def set_counters(self, counters: Counters) -> None:
        """Where drops, bad frames and reconnects come from: called on server threads.

        It returns a mapping with any of ``dropped``, ``bad_frames``, ``reconnects``,
        ``reconnecting``, ``live``, ``stop_reason`` (e.g. read from a :class:`RunSummary`
        or a source's ``stats``); it must be safe to call from another thread.
        """
        self._counters = counters

    # ---- figures (server threads) ----
    def drain(self) -> None:
        """Move the loop's timings into the rolling stats (and the Prometheus histograms)."""
        with self._stats_lock:
            observe = self.hub._observe
            record_age = self.live is not False
            n = 0
            samples = self._samples
            # leave the newest frame a moment so the loop can finish its sink time (unless the run ended)
            final = self.hub.closed or self.counters()["stop_reason"] != "running"
            settled = math.inf if final else time.time() - _SETTLE_S
            while samples and samples[0][0] <= settled:
                try:
                    stamp, t, age = samples.popleft()
                except IndexError:
                    break
                n += 1
                ms = (t.capture, t.pre, t.infer, t.post, t.sink, t.total)
                for stat, v in zip(self.stages.values(), ms):
                    stat.add(v)
                if record_age and age > 0:
                    self.age.add(age)
                self._stamps.append(stamp)
                self.last_write = stamp
                if observe is not None:
                    observe(self.id, ms, age if record_age else 0.0)
            cutoff = time.time() - _FPS_WINDOW_S
            stamps = self._stamps
            while len(stamps) > 1 and stamps[0] < cutoff:
                stamps.popleft()

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dropped": 0, "bad_frames": 0, "reconnects": 0, "reconnecting": False, "stop_reason": "running"}
        if self._counters is not None:
            try:
                out.update(self._counters())
            except Exception as exc:  # a figure is not worth a failed page; say why once
                log.warning("counters of source %s failed: %r", self.id, exc)
        return out

    def fps(self) -> float:
        """Frames per second over the last ~2 s (0 when the stream stopped)."""
        stamps = self._stamps
        if len(stamps) < 2 or time.time() - stamps[-1] > _FPS_WINDOW_S:
            return 0.0
        span = stamps[-1] - stamps[0]
        return (len(stamps) - 1) / span if span > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        """Everything the page and ``/api/status`` show for this source (JSON-ready, no NaN)."""
        self.drain()
        with self._stats_lock:
            stages = {name: _pp(st) for name, st in self.stages.items()}
            age = _pp(self.age)
            fps = self.fps()
        counters = self.counters()
        last = self.last_write
        return {
            "id": self.id,
            "source": self.source,
            "live": bool(counters.get("live", bool(self.live))),
            "model": self.model,
            "frames": self.frames,
            "fps": round(fps, 2),
            "dropped": int(counters["dropped"]),
            "bad_frames": int(counters["bad_frames"]),
            "reconnects": int(counters["reconnects"]),
            "reconnecting": bool(counters["reconnecting"]),
            "stop_reason": str(counters["stop_reason"]),
            "stages_ms": stages,
            "age_ms": age,
            "last_frame_s_ago": round(time.time() - last, 3) if last else None,
            "viewers": self._viewers,
        }

    # ---- viewers and the encoder (server threads) ----
    @contextmanager
    def viewer(self) -> Iterator[None]:
        """Count a connected MJPEG viewer for as long as the block runs (starts the encoder)."""
        with self._jpeg_cond:
            self._viewers += 1
            if self._encoder is None or not self._encoder.is_alive():
                self._encoder = threading.Thread(target=self._encode_loop, name=f"edgecv-jpeg-{self.id}", daemon=True)
                self._encoder.start()
        self._wake.set()
        try:
            yield
        finally:
            with self._jpeg_cond:
                self._viewers -= 1

    @property
    def viewers(self) -> int:
        return self._viewers

    def next_jpeg(self, after: int, timeout: float) -> tuple[bytes | None, int]:
        """Wait up to ``timeout`` s for a JPEG newer than sequence ``after``: ``(jpeg, seq)`` or ``(None, after)``."""
        with self._jpeg_cond:
            if self._jpeg_seq <= after:
                self._jpeg_cond.wait(timeout)
            if self._jpeg_seq > after and self._jpeg is not None:
                return self._jpeg, self._jpeg_seq
            return None, after

    def snapshot(self) -> bytes | None:
        """The newest frame as a JPEG, encoded now (None before the first frame)."""
        latest = self._latest
        return None if latest is None else self._encode(latest)

    def _encode(self, latest: tuple[int, np.ndarray, Any]) -> bytes:
        _, frame, result = latest
        if self.annotate is not None:
            frame = frame.copy()
            drawn = self.annotate(frame, result)
            if isinstance(drawn, np.ndarray):
                frame = drawn
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.hub.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for a frame of shape {frame.shape}")
        self.encoded += 1
        return buf.tobytes()

    def _encode_loop(self) -> None:
        period = 1.0 / self.hub.max_fps
        last_seq = 0
        next_at = 0.0
        while not self.hub.closed:
            if self._viewers <= 0:
                with self._jpeg_cond:  # exit under the lock, so viewer() never misses a dying encoder
                    if self._viewers <= 0:
                        self._encoder = None
                        return
            self._wake.clear()
            latest = self._latest
            if latest is None or latest[0] == last_seq:
                self._wake.wait(0.5)
                continue
            delay = next_at - time.monotonic()
            if delay > 0:  # cap the rate: a newer frame may arrive meanwhile, and that one is encoded
                time.sleep(delay)
                latest = self._latest or latest
            next_at = time.monotonic() + period
            try:
                jpeg = self._encode(latest)
            except Exception as exc:  # one bad frame must not end the preview; say so once per source
                (log.debug if self._encode_failed else log.warning)("preview of source %s: %r (frame skipped)", self.id, exc)
                self._encode_failed = True
                last_seq = latest[0]
                continue
            last_seq = latest[0]
            with self._jpeg_cond:
                self._jpeg, self._jpeg_seq = jpeg, self._jpeg_seq + 1
                self._jpeg_cond.notify_all()

    def wake_viewers(self) -> None:
        with self._jpeg_cond:
            self._jpeg_cond.notify_all()


def _pp(stats: LatencyStats) -> dict[str, float | None]:
    def r(v: float) -> float | None:
        return None if math.isnan(v) else round(v, 3)

    return {"p50": r(stats.p50), "p99": r(stats.p99), "mean": r(stats.mean), "count": stats.count}


class Hub:
    """All the channels of a run (one per source), shared by the sinks and the server.

    Args:
        max_fps: the most JPEG frames per second per stream while someone watches.
        jpeg_quality: 1..100.
    """

    def __init__(self, *, max_fps: float = 15.0, jpeg_quality: int = 80) -> None:
        if not 0 < max_fps <= 120:
            raise ConfigError(f"preview fps must be in (0, 120], got {max_fps}")
        self.max_fps = float(max_fps)
        self.jpeg_quality = int(jpeg_quality)
        self.started = time.time()
        self.closed = False
        self._channels: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self._observe: Callable[[str, tuple[float, ...], float], None] | None = None
        self._drainer = threading.Thread(target=self._drain_loop, name="edgecv-serve-stats", daemon=True)
        self._drainer.start()

    def channel(self, source_id: str, *, source: str = "", model: Any = None, annotate: Annotate | None = None,
                live: bool | None = None) -> Channel:
        """The channel of ``source_id``, created on first use.

        Args:
            source_id: short unique key (``cam0``); used in URLs and metric labels.
            source: what the source is (a path, URL or camera), shown on the page.
            model: a loaded model (its task, precision, backend and input size are shown) or a dict.
            annotate: ``annotate(frame, result)`` run on the encoder thread on a copy of the
                frame; None when the frames arrive already drawn.
            live: the source keeps only the newest frame (camera, stream, ``--realtime``); frame
                age is recorded for live (or unknown) sources only.

        Raises:
            ConfigError: ``source_id`` has characters that do not belong in a URL.
        """
        if not source_id or not all(c.isalnum() or c in "-_." for c in source_id):
            raise ConfigError(f"source id must be letters, digits, '-', '_' or '.', got {source_id!r}", hint="e.g. cam0, front, rear-left")
        with self._lock:
            ch = self._channels.get(source_id)
            if ch is None:
                info = model if isinstance(model, Mapping) or model is None else model_info(model)
                ch = self._channels[source_id] = Channel(self, source_id, source=source, model=info, annotate=annotate, live=live)
            return ch

    def channels(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    def get(self, source_id: str) -> Channel | None:
        with self._lock:
            return self._channels.get(source_id)

    def status(self) -> dict[str, Any]:
        """The JSON of ``/api/status``: version, uptime and every source's figures."""
        from edgecv import __version__

        return {
            "edgecv": __version__,
            "uptime_s": round(time.time() - self.started, 3),
            "sources": [ch.figures() for ch in self.channels()],
        }

    def drain(self) -> None:
        for ch in self.channels():
            ch.drain()

    def status_callback(self, source_id: str, then: Callable[[Any], None] | None = None) -> Callable[[Any], None]:
        """A ``status=`` callback for :func:`~edgecv.stream.pipeline.run_pipeline` that feeds the counters.

        The loop calls it (every ~0.5 s) with its :class:`~edgecv.stream.pipeline.RunSummary`;
        the first call hands the summary to the channel, which reads its integers from server
        threads from then on. ``then`` (e.g. the CLI's status line) is called after.
        """
        registered: list[Any] = []

        def status(summary: Any) -> None:
            if not registered or registered[0] is not summary:
                registered[:] = [summary]
                self.channel(source_id).set_counters(lambda: summary_counters(summary))
            if then is not None:
                then(summary)

        return status

    def _drain_loop(self) -> None:
        while not self.closed:
            time.sleep(0.5)
            try:
                self.drain()
            except Exception as exc:  # keep figures going; a bug here must not kill the thread silently
                log.warning("draining preview stats failed: %r", exc)

    def close(self) -> None:
        """Stop the encoder and stats threads and release every waiting viewer; idempotent."""
        self.closed = True
        for ch in self.channels():
            ch._wake.set()
            ch.wake_viewers()


def summary_counters(summary: Any) -> dict[str, Any]:
    """The counters of a :class:`~edgecv.stream.pipeline.RunSummary` (or anything with those attributes)."""
    return {
        "dropped": getattr(summary, "dropped", 0),
        "bad_frames": getattr(summary, "bad_frames", 0),
        "reconnects": getattr(summary, "reconnects", 0),
        "reconnecting": getattr(summary, "reconnecting", False),
        "live": getattr(summary, "live", False),
        "stop_reason": getattr(summary, "stop_reason", "running"),
    }


class PreviewSink:
    """A run-loop sink that publishes each frame and its figures to a :class:`Hub` channel.

    It takes the result-sink slot (``needs_image=False``): the loop then skips drawing
    for it, and the boxes are drawn on the server's encoder thread, only while someone
    watches. When other sinks make the loop draw (``--save``, ``--show``), pass
    ``annotate=None`` to the channel: the frame arrives drawn.

    Results carrying a ``source_id`` attribute (a multi-source run) go to that source's
    channel; others go to ``channel``.
    """

    needs_image = False
    stop_requested = False

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._hub = channel.hub

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        sid = getattr(result, "source_id", None)
        ch = self.channel
        if sid is not None and sid != ch.id:
            ch = self._hub.channel(str(sid), annotate=ch.annotate, model=ch.model, live=ch.live)
        ch.offer(frame, result)

    def close(self) -> None:
        """Nothing to finalize: the server keeps showing the last frame until it is closed."""

    def __repr__(self) -> str:
        return f"PreviewSink({self.channel.id})"
