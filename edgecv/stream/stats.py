"""Latency statistics shared by the run loop and the benchmarks.

:class:`LatencyStats` records durations in milliseconds. Count, mean, std, min
and max are exact over every sample; percentiles are computed over the most
recent ``window`` samples, kept in a float64 ring buffer that grows to at most
``window`` entries (800 KB at the default 100,000), so memory stays bounded on
a run that lasts days (``scripts/soak.py`` measures it). Recording a sample
costs a few hundred nanoseconds, cheap enough to call several times per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
    """Percentiles of ``values`` as ``{"p50": ..., "p99": ...}`` (NaN when empty).

    Uses linear interpolation between closest ranks (numpy's default), the
    convention of most latency tools.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {_pname(q): math.nan for q in qs}
    vals = np.percentile(arr, list(qs))
    return {_pname(q): float(v) for q, v in zip(qs, np.atleast_1d(vals), strict=True)}


def _pname(q: float) -> str:
    return f"p{q:g}".replace(".", "_")


class LatencyStats:
    """Running statistics of durations in milliseconds.

    Args:
        name: label used in reports (e.g. ``"infer"``).
        window: how many of the most recent samples percentiles are computed
            over; older samples still count in count/mean/std/min/max.

    Not thread-safe: record from one thread (readers may take a slightly
    stale snapshot, which is fine for a status line).
    """

    __slots__ = ("name", "window", "_buf", "_n", "_pos", "count", "_sum", "_sumsq", "min", "max")

    def __init__(self, name: str = "", window: int = 100_000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.name = name
        self.window = int(window)
        self._buf = np.empty(min(1024, self.window), np.float64)  # grows by doubling up to `window`, then a ring
        self._n = 0  # samples held (<= window)
        self._pos = 0  # once full: the oldest sample, overwritten next
        self.count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, ms: float) -> None:
        """Record one duration in milliseconds."""
        if self._n < self.window:
            if self._n == len(self._buf):
                grown = np.empty(min(2 * len(self._buf), self.window), np.float64)
                grown[: self._n] = self._buf
                self._buf = grown
            self._buf[self._n] = ms
            self._n += 1
        else:
            self._buf[self._pos] = ms
            self._pos = (self._pos + 1) % self.window
        self.count += 1
        self._sum += ms
        self._sumsq += ms * ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def extend(self, values: Iterable[float]) -> None:
        """Record many durations."""
        for v in values:
            self.add(float(v))

    def reset(self) -> None:
        """Forget every sample (e.g. after warm-up)."""
        self._n = self._pos = 0
        self.count = 0
        self._sum = self._sumsq = 0.0
        self.min, self.max = math.inf, -math.inf

    def __len__(self) -> int:
        return self.count

    @property
    def values(self) -> np.ndarray:
        """(M,) float64: the retained samples (the last ``min(count, window)``), oldest first (a copy)."""
        if self._n < self.window or self._pos == 0:
            return self._buf[: self._n].copy()
        return np.concatenate((self._buf[self._pos :], self._buf[: self._pos]))

    @property
    def nbytes(self) -> int:
        """Memory held by the retained samples (at most ``8 * window``)."""
        return int(self._buf.nbytes)

    @property
    def last(self) -> float:
        """The most recent sample (NaN when empty)."""
        if not self._n:
            return math.nan
        return float(self._buf[self._n - 1] if self._n < self.window else self._buf[self._pos - 1])

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (NaN when empty)."""
        if not self.count:
            return math.nan
        var = self._sumsq / self.count - self.mean**2
        return math.sqrt(max(var, 0.0))

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) over the retained window (NaN when empty)."""
        return percentiles(self._buf[: self._n], (q,))[_pname(q)]

    def percentiles(self, qs: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
        """``{"p50": ..., "p90": ..., "p99": ...}`` over the retained window."""
        return percentiles(self._buf[: self._n], qs)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def summary(self, qs: Sequence[float] = DEFAULT_PERCENTILES, ndigits: int | None = 3) -> dict[str, Any]:
        """JSON-ready dict: count, mean, std, min, max and the percentiles ``qs``.

        Empty stats give ``None`` for every value (JSON has no NaN).
        """
        out: dict[str, Any] = {"count": self.count}
        vals: dict[str, float] = {
            "mean": self.mean,
            "std": self.std,
            "min": self.min if self.count else math.nan,
            "max": self.max if self.count else math.nan,
            **self.percentiles(qs),
        }
        for key, v in vals.items():
            out[key] = None if math.isnan(v) else (round(v, ndigits) if ndigits is not None else v)
        return out

    def __repr__(self) -> str:
        if not self.count:
            return f"LatencyStats({self.name!r}, empty)"
        return f"LatencyStats({self.name!r}, n={self.count}, mean={self.mean:.3f} ms, p50={self.p50:.3f} ms, p99={self.p99:.3f} ms)"
