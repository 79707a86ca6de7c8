"""edgecv's linear assignment against SciPy's (a test dependency only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.track.assignment import box_iou, linear_sum_assignment, match

scipy_lsa = pytest.importorskip("scipy.optimize").linear_sum_assignment


@pytest.mark.parametrize("kind", ["uniform", "integers", "sparse"])
@pytest.mark.parametrize("maximize", [False, True])
def test_same_assignment_as_scipy(kind: str, maximize: bool) -> None:
    rng = np.random.default_rng(hash((kind, maximize)) % 2**32)
    for _ in range(300):
        r, c = rng.integers(0, 14, 2)
        if kind == "uniform":
            m = rng.random((r, c))
        elif kind == "integers":  # many ties: SciPy's tie-breaking must be reproduced too
            m = rng.integers(0, 4, (r, c)).astype(float)
        else:  # IoU-like: mostly zeros
            m = (rng.random((r, c)) > 0.7) * rng.random((r, c))
        rows, cols = linear_sum_assignment(m, maximize=maximize)
        ref_rows, ref_cols = scipy_lsa(m, maximize=maximize)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)


def test_large_matrix_optimal() -> None:
    m = np.random.default_rng(1).normal(size=(60, 80))
    rows, cols = linear_sum_assignment(m)
    ref = scipy_lsa(m)
    assert m[rows, cols].sum() == pytest.approx(m[ref].sum())


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="inf or nan"):
        linear_sum_assignment(np.array([[0.0, np.inf]]))


def test_box_iou_and_match() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [100, 100, 101, 101]], np.float32)
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(25 / 175)
    assert iou[1, 1] == 1.0 and iou[0, 2] == 0.0
    pairs, free_rows, free_cols = match(iou, 0.2)  # (0, 0) is the best pair for row 0 but below 0.2
    assert pairs.tolist() == [[1, 1]]
    assert free_rows.tolist() == [0] and free_cols.tolist() == [0, 2]
    pairs, free_rows, free_cols = match(np.zeros((0, 3)), 0.1)
    assert pairs.shape == (0, 2) and free_cols.tolist() == [0, 1, 2]


def test_match_shortcut_equals_full_assignment() -> None:
    """match() pairs isolated overlaps directly; it must give what solving the whole matrix gives."""
    rng = np.random.default_rng(3)
    for _ in range(500):
        r, c = rng.integers(1, 30, 2)
        sim = (rng.random((r, c)) > rng.uniform(0.5, 0.97)) * rng.random((r, c))
        rows, cols = scipy_lsa(sim, maximize=True)
        ok = sim[rows, cols] >= 0.1
        pairs, free_rows, free_cols = match(sim, 0.1)
        np.testing.assert_array_equal(pairs, np.stack([rows[ok], cols[ok]], axis=1))
        assert set(free_rows.tolist()) == set(range(r)) - set(rows[ok].tolist())
        assert set(free_cols.tolist()) == set(range(c)) - set(cols[ok].tolist())
    with pytest.raises(ValueError, match="> 0"):
        match(np.ones((2, 2)), 0.0)
