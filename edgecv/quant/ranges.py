"""Activation statistics and the calibration methods that turn them into INT8 ranges.

Statistics are collected once per tensor (:class:`TensorStats`: signed min/max and a
histogram of ``|x|``) and every method reads the same statistics, so ``--method all``
costs one pass over the calibration images:

- **minmax**: ``amax = max |x|``. Exact for the calibration set, wasteful when a few
  outliers stretch the range.
- **percentile** (default 99.99): ``amax`` at that percentile of ``|x|``.
- **entropy**: TensorRT's ``IInt8EntropyCalibrator2`` rule: the clipping threshold whose
  128-level quantized distribution has the smallest KL divergence from the clipped
  reference distribution (Migacz, "8-bit Inference with TensorRT", GTC 2017).

Symmetric INT8 (TensorRT) uses ``[-amax, amax]``; asymmetric UINT8 (ONNX Runtime's CPU
kernels) uses the observed ``[min, max]`` clipped to ``[-amax, amax]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecv.errors import ConfigError

METHODS = ("entropy", "percentile", "minmax")
MAX_BINS = 2048
QUANT_LEVELS = 128  # the 7 magnitude bits of symmetric INT8
DEFAULT_PERCENTILE = 99.99


class Scratch:
    """Work buffers for :meth:`TensorStats.update`, grown as needed and reused.

    Fresh arrays for each tensor of each image (|x| and its bin indices, ~200 MB per
    image at 640 px) cost page faults that the arithmetic does not: a statistics pass
    reuses one ``Scratch``.
    """

    def __init__(self) -> None:
        self._float = np.empty(0, np.float32)
        self._index = np.empty(0, np.intp)

    def buffers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A float32 and an intp array of ``size`` elements (views; overwritten by the next call)."""
        if self._float.size < size:
            self._float = np.empty(size, np.float32)
            self._index = np.empty(size, np.intp)
        return self._float[:size], self._index[:size]


@dataclass
class TensorStats:
    """Running statistics of one activation tensor.

    The histogram of ``|x|`` has a fixed bin width and grows with the data: when a batch
    exceeds the covered range, bins are appended, and when that would pass
    :data:`MAX_BINS`, neighbouring bins are merged (the width doubles) until it fits. So
    the statistics are exact for any order of batches, with at least ``MAX_BINS / 2`` bins
    over ``[0, max |x|]``.
    """

    min: float = float("inf")
    max: float = float("-inf")
    count: int = 0
    width: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    def update(self, values: np.ndarray, *, histogram: bool = True, scratch: Scratch | None = None) -> None:
        """Add a batch. ``histogram=False`` keeps min/max only (``amax`` is then ``max |x|`` for every method).

        ``scratch``: work buffers reused across calls (one pass over many tensors); the
        histogram is the same with or without.
        """
        values = np.asarray(values, np.float32).ravel()
        if not values.size:
            return
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high)):  # rare: one more pass to drop inf/nan
            values = values[np.isfinite(values)]
            if not values.size:
                return
            low, high = float(values.min()), float(values.max())
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        self.count += values.size
        if not histogram:
            return
        top = max(-low, high)
        if self.width == 0.0:
            if top == 0.0:  # all zeros so far: keep them as a count in bin 0 once a width exists
                self.hist = np.array([self.hist.sum() + values.size], np.int64) if self.hist.size else np.array([values.size], np.int64)
                return
            zeros = int(self.hist.sum()) if self.hist.size else 0
            self.width = top / MAX_BINS
            self.hist = np.zeros(MAX_BINS, np.int64)
            self.hist[0] = zeros
        needed = int(top / self.width) + 1
        if needed > self.hist.size:
            while needed > MAX_BINS:
                self._merge_pairs()
                needed = int(top / self.width) + 1
            self.hist = np.concatenate([self.hist, np.zeros(needed - self.hist.size, np.int64)])
        x, idx = (scratch or Scratch()).buffers(values.size)
        np.abs(values, out=x)
        np.multiply(x, np.float32(1.0 / self.width), out=x)
        np.copyto(idx, x, casting="unsafe")  # truncation, as astype; intp is what bincount takes
        np.minimum(idx, self.hist.size - 1, out=idx)
        self.hist += np.bincount(idx, minlength=self.hist.size)

    def _merge_pairs(self) -> None:
        if self.hist.size % 2:
            self.hist = np.append(self.hist, 0)
        self.hist = self.hist.reshape(-1, 2).sum(axis=1)
        self.width *= 2

    def amax(self, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
        """The clipping magnitude this method chooses (0 for an all-zero tensor)."""
        if method == "minmax" or self.width == 0.0:
            return self.absmax
        if method == "percentile":
            return min(self.absmax, percentile_amax(self.hist, self.width, percentile))
        if method == "entropy":
            step = max(1, (self.hist.size - QUANT_LEVELS) // 512)  # <= ~512 cuts: ~10 ms per tensor
            return min(self.absmax, entropy_amax(self.hist, self.width, step=step))
        raise ConfigError(f"unknown calibration method {method!r}", hint=f"use one of {', '.join(METHODS)}")


def percentile_amax(hist: np.ndarray, width: float, percentile: float) -> float:
    """Upper edge of the first bin where the cumulative share of ``|x|`` reaches ``percentile``."""
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}", hint="e.g. --percentile 99.99")
    cumulative = np.cumsum(hist, dtype=np.float64)
    if cumulative[-1] <= 0:
        return 0.0
    index = int(np.searchsorted(cumulative, cumulative[-1] * percentile / 100.0))
    return (min(index, hist.size - 1) + 1) * width


def entropy_amax(hist: np.ndarray, width: float, levels: int = QUANT_LEVELS, step: int = 1) -> float:
    """TensorRT's entropy calibration: the threshold minimising KL(reference || quantized).

    For each candidate cut ``i`` (from ``levels`` bins to all of them): the reference
    ``P`` is ``hist[:i]`` with everything beyond folded into its last bin; ``Q`` merges
    ``hist[:i]`` into ``levels`` groups and spreads each group's mass evenly over its
    non-empty bins. The threshold is the upper edge of the best cut, ``i * width``.
    ``step`` > 1 tries every step-th cut only (the divergence varies slowly with ``i``).
    """
    hist = np.asarray(hist, np.float64)
    n = hist.size
    if n <= levels:
        return n * width
    total = hist.sum()
    if total <= 0:
        return 0.0
    nonzero = (hist > 0).astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(hist)])
    cnz = np.concatenate([[0.0], np.cumsum(nonzero)])
    best_i, best_kl = n, np.inf
    for i in range(levels, n + 1, step):
        p = hist[:i].copy()
        p[-1] += total - csum[i]
        edges = (np.arange(levels + 1) * i) // levels  # group g covers bins [edges[g], edges[g+1])
        group_mass = csum[edges[1:]] - csum[edges[:-1]]
        group_nonzero = cnz[edges[1:]] - cnz[edges[:-1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_bin = np.where(group_nonzero > 0, group_mass / group_nonzero, 0.0)
        q = np.repeat(per_bin, np.diff(edges)) * nonzero[:i]
        kl = _kl(p, q)
        if kl < best_kl:
            best_i, best_kl = i, kl
    return best_i * width


def _kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """KL(p || q) of two unnormalised histograms; q's empty bins (where p is not) get ``eps`` mass."""
    p = p / p.sum()
    q_sum = q.sum()
    if q_sum <= 0:
        return np.inf
    q = q / q_sum
    mask = p > 0
    q = np.where(mask & (q <= 0), eps, q)
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
