"""Activation statistics and the three calibration methods."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import ConfigError
from edgecv.quant.ranges import MAX_BINS, TensorStats, entropy_amax


def _stats(*chunks: np.ndarray) -> TensorStats:
    s = TensorStats()
    for chunk in chunks:
        s.update(chunk)
    return s


def test_histogram_counts_every_value_and_tracks_signed_range() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000).astype(np.float32), rng.normal(0, 10, 5000).astype(np.float32)
    s = _stats(a, b)  # the second chunk stretches the range: bins grow, then merge
    assert s.hist.sum() == s.count == 10000
    assert MAX_BINS // 2 <= s.hist.size <= MAX_BINS
    assert s.min == pytest.approx(min(a.min(), b.min())) and s.max == pytest.approx(max(a.max(), b.max()))
    # the histogram is exact up to its bin width: compare with numpy on the same bins
    x = np.abs(np.concatenate([a, b]))
    expected = np.bincount(np.minimum((x / s.width).astype(int), s.hist.size - 1), minlength=s.hist.size)
    assert np.abs(expected - s.hist).sum() <= 2  # float32 vs float64 rounding at bin edges


def test_methods_ignore_outliers_that_minmax_keeps() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 200_000).astype(np.float32)
    s = _stats(values, np.array([50.0], np.float32))
    assert s.amax("minmax") == pytest.approx(50.0)
    p = s.amax("percentile", 99.99)
    assert p == pytest.approx(np.percentile(np.abs(values), 99.99), abs=2 * s.width)
    e = s.amax("entropy")
    assert 2.5 < e < 6.0  # KL keeps ~3-5 sigma of a Gaussian, not the outlier


def test_entropy_keeps_the_whole_range_of_a_uniform_distribution() -> None:
    hist = np.full(2048, 100, np.int64)
    assert entropy_amax(hist, 0.01) == pytest.approx(2048 * 0.01, rel=0.05)


def test_all_zero_tensor_and_nonfinite_values() -> None:
    s = _stats(np.zeros(100, np.float32), np.zeros(10, np.float32))
    assert s.count == 110 and s.amax("entropy") == 0.0
    s.update(np.array([np.nan, np.inf, 2.0], np.float32))
    assert s.count == 111 and s.amax("minmax") == 2.0 and s.hist.sum() == 111


def test_unknown_method_and_bad_percentile() -> None:
    s = _stats(np.arange(10, dtype=np.float32))
    with pytest.raises(ConfigError, match="unknown calibration method"):
        s.amax("kl")
    with pytest.raises(ConfigError, match="percentile"):
        s.amax("percentile", 0)


def test_shared_scratch_buffers_give_the_same_histograms() -> None:
    """One Scratch reused across tensors of different sizes (as a statistics pass does) changes nothing."""
    from edgecv.quant.ranges import Scratch

    rng = np.random.default_rng(2)
    chunks = {name: [rng.normal(0, scale * (1 + i), size).astype(np.float32) for i in range(4)]
              for name, scale, size in (("a", 1.0, 7000), ("b", 30.0, 300), ("c", 0.01, 20000))}  # fmt: skip
    shared, alone = Scratch(), {name: TensorStats() for name in chunks}
    with_scratch = {name: TensorStats() for name in chunks}
    for i in range(4):
        for name, values in chunks.items():
            with_scratch[name].update(values[i], scratch=shared)
            alone[name].update(values[i])
    for name in chunks:
        s, t = with_scratch[name], alone[name]
        assert (s.min, s.max, s.count, s.width) == (t.min, t.max, t.count, t.width)
        assert np.array_equal(s.hist, t.hist)
    one = TensorStats()
    one.update(chunks["a"][0], scratch=shared)  # one chunk: the bins numpy's astype gives
    x = np.abs(chunks["a"][0]) * np.float32(1.0 / one.width)
    assert np.array_equal(one.hist, np.bincount(np.minimum(x.astype(np.int64), one.hist.size - 1), minlength=one.hist.size))
