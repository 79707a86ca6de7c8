"""Linear assignment (the Hungarian problem) and box IoU, in numpy.

:func:`linear_sum_assignment` is the shortest-augmenting-path algorithm of
Jonker-Volgenant as described by Crouse (2016), the one SciPy uses; it returns
the same optimal assignment as ``scipy.optimize.linear_sum_assignment`` (tests
compare the two), including SciPy's tie-breaking when several columns are
equally short. SciPy is not a runtime dependency of edgecv, so the tracker uses
this one. The inner loop over columns is vectorized, so one augmentation costs
O(rows x cols) numpy work; trackers solve matrices of a few tens of rows.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Solve the rectangular linear assignment problem.

    Args:
        cost: (R, C) finite float cost matrix (``-inf``/``nan`` are rejected).
        maximize: maximize the total instead of minimizing it.

    Returns:
        ``(rows, cols)``: two (min(R, C),) int64 arrays, ``rows`` ascending, such that
        ``cost[rows, cols].sum()`` is optimal.

    Raises:
        ValueError: ``cost`` is not 2-D or holds a non-finite value.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("cost matrix holds inf or nan; use a large finite cost for forbidden pairs")
    if maximize:
        c = -c
    transpose = c.shape[0] > c.shape[1]
    if transpose:
        c = c.T
    nr, nc = c.shape
    if nr == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    u = np.zeros(nr)
    v = np.zeros(nc)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    for cur_row in range(nr):
        shortest = np.full(nc, np.inf)
        path = np.full(nc, -1, np.int64)
        scanned_rows = np.zeros(nr, bool)
        scanned_cols = np.zeros(nc, bool)
        remaining = np.arange(nc - 1, -1, -1, dtype=np.int64)  # SciPy's scan order
        n_remaining = nc
        min_val = 0.0
        i = cur_row
        sink = -1
        while sink == -1:
            scanned_rows[i] = True
            rem = remaining[:n_remaining]
            reduced = min_val + c[i, rem] - u[i] - v[rem]
            better = reduced < shortest[rem]
            path[rem[better]] = i
            shortest[rem[better]] = reduced[better]
            lengths = shortest[rem]
            lowest = lengths.min()
            # SciPy's scan keeps the first minimum, moving on to a later equal one only when that
            # column is free (it ends the path): the last free minimum if any, else the first minimum.
            at_min = np.flatnonzero(lengths == lowest)
            free = at_min[row4col[rem[at_min]] == -1]
            index = int(free[-1]) if free.size else int(at_min[0])
            min_val = float(lowest)
            j = int(rem[index])
            if row4col[j] == -1:
                sink = j
            else:
                i = int(row4col[j])
            scanned_cols[j] = True
            n_remaining -= 1
            remaining[index] = remaining[n_remaining]
        u[cur_row] += min_val
        others = scanned_rows.copy()
        others[cur_row] = False
        rows = np.flatnonzero(others)
        u[rows] += min_val - shortest[col4row[rows]]
        v[scanned_cols] -= min_val - shortest[scanned_cols]
        j = sink
        while True:
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur_row:
                break
    if transpose:
        order = np.argsort(col4row, kind="stable")
        return col4row[order], order.astype(np.int64)
    return np.arange(nr, dtype=np.int64), col4row


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two box sets.

    Args:
        a: (N, 4) x1 y1 x2 y2; b: (M, 4) x1 y1 x2 y2 (any float dtype).

    Returns:
        (N, M) float64 IoU in [0, 1]; 0 where a union is empty.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching that maximizes total similarity, then drops pairs below ``min_similarity``.

    The same pairs as solving the whole matrix with :func:`linear_sum_assignment` and
    filtering (what ByteTrack does), found faster: rows and columns that overlap exactly
    one partner (most objects between two frames) are paired directly, and only the
    rest goes to the solver. Pairs of zero similarity never count, so ``min_similarity``
    must be > 0.

    Args:
        similarity: (R, C) float matrix >= 0 (e.g. IoU of tracks x detections).
        min_similarity: a matched pair must reach this similarity (> 0) to count.

    Returns:
        ``(pairs, unmatched_rows, unmatched_cols)``: (K, 2) int64 (row, col) pairs in row order,
        and the sorted int64 indices left unmatched on each side.
    """
    if not min_similarity > 0:
        raise ValueError(f"min_similarity must be > 0, got {min_similarity}")
    nr, nc = similarity.shape
    if nr == 0 or nc == 0:
        return np.zeros((0, 2), np.int64), np.arange(nr, dtype=np.int64), np.arange(nc, dtype=np.int64)
    positive = similarity > 0
    row_deg = positive.sum(axis=1)
    col_deg = positive.sum(axis=0)
    # a row with one positive entry whose column has no other: a component of its own, paired directly
    only_col = positive.argmax(axis=1)
    single = (row_deg == 1) & (col_deg[only_col] == 1)
    rows = [np.flatnonzero(single)]
    cols = [only_col[single]]
    busy_rows = np.flatnonzero((row_deg > 0) & ~single)
    if busy_rows.size:
        busy_cols = np.flatnonzero(positive[busy_rows].any(axis=0))
        sub_r, sub_c = linear_sum_assignment(similarity[np.ix_(busy_rows, busy_cols)], maximize=True)
        rows.append(busy_rows[sub_r])
        cols.append(busy_cols[sub_c])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    ok = similarity[r, c] >= min_similarity
    r, c = r[ok], c[ok]
    order = np.argsort(r, kind="stable")
    r, c = r[order], c[order]
    free_rows = np.ones(nr, bool)
    free_rows[r] = False
    free_cols = np.ones(nc, bool)
    free_cols[c] = False
    return np.stack([r, c], axis=1).astype(np.int64), np.flatnonzero(free_rows), np.flatnonzero(free_cols)
