"""The hand-off between a capture thread and the consumer.

Two policies behind one small class:

* ``latest_only`` (live sources): a one-slot mailbox. A new frame replaces an
  unconsumed one, which is counted as dropped, so the consumer always gets the
  newest frame and latency never grows.
* bounded FIFO (files, images): the producer blocks when ``maxsize`` frames
  wait, so no frame is lost and memory stays bounded.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Thread-safe producer/consumer hand-off with end-of-stream and error propagation.

    Args:
        maxsize: how many items may wait (ignored with ``latest_only``, which keeps 1).
        latest_only: keep only the newest item, counting replaced ones in :attr:`dropped`.
    """

    def __init__(self, maxsize: int = 4, *, latest_only: bool = False) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = 1 if latest_only else int(maxsize)
        self.latest_only = latest_only
        self.dropped = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._ended = False
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: T) -> bool:
        """Offer an item (producer side). Returns False when the consumer has closed the hand-off.

        With ``latest_only`` this never blocks; otherwise it blocks while the queue is full.
        """
        with self._cond:
            if self.latest_only:
                if self._items:
                    self._items.clear()
                    self.dropped += 1
            else:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._cond.wait(0.25)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """Take the next item (consumer side), waiting up to ``timeout`` seconds.

        Returns None on timeout or at the end of the stream (check :attr:`finished`).

        Raises:
            BaseException: the error the producer ended with, once every item before it was taken.
        """
        with self._cond:
            if not self._items and not self._ended and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._ended and self._error is not None:
                err, self._error = self._error, None
                raise err
            return None

    def wait_space(self, timeout: float | None = None) -> bool:
        """Wait (producer side) until :meth:`put` would not block; False on timeout or once closed.

        A producer that calls this *before* making its next item makes only items the
        consumer will take (the prefetch worker preprocesses no frame that is then dropped).
        """
        with self._cond:
            if len(self._items) >= self.maxsize and not self._closed:
                self._cond.wait(timeout)
            return len(self._items) < self.maxsize and not self._closed

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the end of the stream (producer side), optionally with the error that ended it."""
        with self._cond:
            self._ended = True
            self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the hand-off (consumer side): wakes a blocked producer, whose next put returns False."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """True once the producer ended (or the consumer closed) and nothing is left to take."""
        with self._cond:
            return (self._ended or self._closed) and not self._items and self._error is None

    @property
    def ready(self) -> bool:
        """True when :meth:`get` would return at once: an item waits, or the stream ended (or failed)."""
        with self._cond:
            return bool(self._items) or self._ended or self._closed

    @property
    def closed(self) -> bool:
        return self._closed
