"""Per-source prefetch and the batcher that gathers the newest frame of every source.

Each source has a capture thread (:class:`~edgecv.stream.capture.Source`) and a
:class:`Prefetch` worker that preprocesses its frames into a one-slot
:class:`~edgecv.stream._handoff.Handoff`. The worker waits until the slot is
free *before* it takes a frame from the source, so it preprocesses only frames
the loop will infer: a live source's unused frames are dropped (and counted)
in the source's own newest-frame mailbox, never after preprocessing.

For a live source the worker also waits until just before the loop will want
the next frame (the loop's busy time per batch, which the loop reports, minus
the preprocessing time), so the frame it takes is nearly as fresh as without
prefetch, while preprocessing still overlaps inference.

:class:`Batcher` (nvstreammux's idea) takes one frame from each source that has
one: it waits until every active source is ready or until ``timeout_s`` after
the first one was, whichever comes first, so a slow, reconnecting or dead
source never stalls the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecv.stream._handoff import Handoff

log = logging.getLogger(__name__)

Preprocess = Callable[[np.ndarray], tuple[Any, Any]]


@dataclass(slots=True)
class Prepared:
    """A captured frame with its model feeds: ``feeds``/``transform`` are None when the loop preprocesses (GPU)."""

    frame: Any
    feeds: Any
    transform: Any
    pre_ms: float
    gpu_infer_ms: float = 0.0  # GPU preprocessing: the infer share of the measured time (Model.stage_ms)


class Prefetch:
    """Preprocesses one source's frames on a worker thread, one frame ahead of the loop.

    Args:
        source: a started :class:`~edgecv.stream.capture.Source`.
        preprocess: ``bgr -> (feeds, transform)``, or None to hand frames over as they are
            (the loop preprocesses them itself, e.g. on the GPU).
        on_ready: called (from the worker) after an item or the end was handed over; the
            batcher uses it to wake up.
        just_in_time: live sources: take the frame shortly before the loop wants it (fresher
            frames) rather than as soon as the slot is free.
    """

    def __init__(
        self, source: Any, preprocess: Preprocess | None, on_ready: Callable[[], None] | None = None, *, just_in_time: bool = True
    ) -> None:
        self.source = source
        self._jit = just_in_time
        self._preprocess = preprocess
        self._on_ready = on_ready
        self._live = bool(getattr(source, "is_live", False))
        self.handoff: Handoff[Prepared] = Handoff(1)
        self._stop = threading.Event()
        self._busy = 0.0  # EMA of the loop's busy time between two takes, in ms (reported by the loop)
        self._pre = 0.0  # EMA of the preprocessing time
        self._thread = threading.Thread(target=self._run, name=f"edgecv-prefetch-{getattr(source, 'name', '')}"[:60], daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames dropped after preprocessing: always 0 (drops happen in the source, before it)."""
        return 0

    def _run(self) -> None:
        error: BaseException | None = None
        perf = time.perf_counter
        try:
            first = True
            while not self._stop.is_set():
                if not self.handoff.wait_space(0.1):
                    if self.handoff.closed:
                        break
                    continue
                if self._live and self._jit and not first:
                    self._wait_until_due()
                first = False
                frame = self.source.read(0.1)
                while frame is None and not self._stop.is_set() and not self.source.finished:
                    frame = self.source.read(0.1)
                if frame is None:
                    break
                start = perf()
                feeds, transform = self._preprocess(frame.image) if self._preprocess is not None else (None, None)
                pre_ms = (perf() - start) * 1e3
                self._pre = pre_ms if self._pre == 0.0 else 0.8 * self._pre + 0.2 * pre_ms
                if not self.handoff.put(Prepared(frame, feeds, transform, pre_ms)):
                    break
                self._notify()
        except BaseException as exc:  # handed to the loop's thread, which raises it
            error = exc
        finally:
            self.handoff.finish(error)
            self._notify()

    def note_busy(self, busy_ms: float) -> None:
        """The loop reports how long it was busy (not waiting) between two takes from this worker."""
        self._busy = busy_ms if self._busy == 0.0 else 0.7 * self._busy + 0.3 * busy_ms

    def _wait_until_due(self) -> None:
        """Live sources: sleep until shortly before the loop will take the next frame (fresher frames).

        The estimate is the loop's busy time (inference, postprocessing, the consumer), never the
        time between takes, which includes waiting for this worker and would feed back on itself.
        """
        delay_ms = 0.85 * self._busy - self._pre - 2.0  # ready early: 15% of the busy time + 2 ms (late wake-ups on busy CPUs)
        if delay_ms > 1.0:
            self._stop.wait(delay_ms / 1e3)

    def _notify(self) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.handoff.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.debug("prefetch thread of %s still busy after %.1f s", getattr(self.source, "name", "?"), timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Batcher:
    """Gathers at most one prepared frame per source into a batch, up to a deadline.

    Args:
        prefetches: one :class:`Prefetch` per source (their ``on_ready`` must call :meth:`wake`).
        timeout_s: after the first source is ready, wait at most this long for the others.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._cond = threading.Condition()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_ready(
        self, prefetches: Sequence[Prefetch], stop: threading.Event, idle_s: float = 0.1, until: Callable[[], bool] | None = None
    ) -> list[int]:
        """Indices of the ``prefetches`` to take from now (ready: an item waits or the source ended).

        Returns as soon as every one is ready, or ``timeout_s`` after the first one was; an empty
        list after ``idle_s`` with none ready (so the caller can check ``stop`` and report status),
        or at once when ``until()`` is true (checked whenever :meth:`wake` is called: the loop
        has a finished inference to deliver first).
        """
        deadline: float | None = None
        with self._cond:
            while True:
                ready = [i for i, p in enumerate(prefetches) if p.handoff.ready]
                if stop.is_set() or len(ready) == len(prefetches):
                    return ready
                if until is not None and until():
                    return []
                now = time.perf_counter()
                if ready:
                    if deadline is None:
                        deadline = now + self.timeout_s
                    if now >= deadline:
                        return ready
                    self._cond.wait(deadline - now)
                elif not self._cond.wait(idle_s):
                    return []
