"""LatencyStats: exact running moments, windowed percentiles, JSON-ready summaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgecv.stream.stats import LatencyStats, percentiles


def test_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 3.0, size=1000)
    st = LatencyStats("infer")
    st.extend(values)
    assert st.count == len(st) == 1000
    assert st.mean == pytest.approx(values.mean())
    assert st.std == pytest.approx(values.std())
    assert (st.min, st.max) == (values.min(), values.max())
    assert st.p50 == pytest.approx(np.percentile(values, 50))
    assert st.percentiles((90, 99.9)) == {
        "p90": pytest.approx(np.percentile(values, 90)),
        "p99_9": pytest.approx(np.percentile(values, 99.9)),
    }


def test_window_bounds_memory_but_moments_stay_exact() -> None:
    st = LatencyStats(window=10)
    st.extend(range(100))
    assert len(st.values) < 20 and st.values[-1] == 99
    assert st.count == 100 and st.mean == pytest.approx(49.5) and st.min == 0
    assert st.p50 >= 80  # percentiles describe the recent window


def test_empty_and_summary_json() -> None:
    st = LatencyStats()
    assert math.isnan(st.mean) and math.isnan(st.p99) and math.isnan(st.last)
    assert json.dumps(st.summary(), allow_nan=False)
    assert st.summary()["p50"] is None
    st.add(2.0)
    st.add(4.0)
    s = st.summary()
    assert s["count"] == 2 and s["mean"] == 3.0 and s["min"] == 2.0 and s["max"] == 4.0 and st.last == 4.0
    st.reset()
    assert st.count == 0
    assert math.isnan(percentiles([], (50,))["p50"])


def test_memory_is_bounded_by_the_window() -> None:
    st = LatencyStats(window=1000)
    st.extend(float(i) for i in range(50_000))
    assert st.nbytes == 8 * 1000  # a float64 ring: it never grows past the window
    assert st.count == 50_000 and st.last == 49_999.0
    assert st.values[0] == 49_000.0 and st.values[-1] == 49_999.0  # the newest window, oldest first
    assert st.p50 == pytest.approx(49_499.5)
