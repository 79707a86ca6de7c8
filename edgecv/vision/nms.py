"""Non-maximum suppression bit-compatible with ``torchvision.ops.batched_nms``: ONNX Runtime's kernel
up to 2,048 boxes (:mod:`edgecv.vision.nms_kernel`), numpy routes above and where the kernel's
arithmetic would differ.

The kept set is the one torchvision keeps on CPU for the same float32 or
float64 inputs with finite values (checked against torchvision 0.28's Python
``batched_nms`` running its CPU kernel source), because every step does the
same arithmetic in the same precision:

- order: scores descending, stable (ties keep the lower index first);
- areas ``(x2 - x1) * (y2 - y1)`` (no ``+ 1``), overlap ``max(0, min - max)``,
  IoU ``inter / (area_i + area_j - inter)``, all in the boxes' dtype;
- a box is suppressed when its IoU with a kept box is strictly greater than
  ``iou_threshold`` (compared as a float64, like the C++ ``double``), so an IoU
  exactly at the threshold is kept; two zero-area boxes give 0/0 = NaN, which
  suppresses nothing;
- class-aware NMS dispatches as ``batched_nms`` does on CPU: up to 1000 boxes,
  the coordinate trick (boxes shifted by ``class_id * (max coordinate + 1)``,
  rounded in float32 like torchvision's); above, per-class NMS on the original
  coordinates. Like torchvision's trick, boxes with coordinates below -1 can
  then meet boxes of another class; boxes with all coordinates >= -1 never do.

Algorithm: greedy NMS in score order (the result is the greedy one exactly). Up to
2,048 float32 boxes with finite corners (x2 >= x1, y2 >= y1) and a threshold in
[0, 1], ONNX Runtime's ``NonMaxSuppression`` kernel runs the loop in C++ (the
10-300 candidates of a real frame cost numpy its per-call overhead, not arithmetic);
``route="numpy"`` forces the numpy routes, which serve everything else. They are
chosen from the input, all computing each IoU as above:

- up to 128 boxes: one dense (N, N) IoU matrix; its rows are packed into Python
  ints and resolved with bit operations, one Python step per kept box that meets
  another (:func:`_resolve_dense`). At the sizes of a real frame (10-300
  candidates) the cost is the number of numpy calls, so this route makes few;
- the pair graph (:func:`_greedy_sparse`; threshold >= 0, finite boxes), tried
  first for 129-512 and above 2,048 boxes and taken when there are <= 8 candidate
  pairs per box (many classes, scattered boxes): every pair that can overlap
  enough is listed at once by an x-sorted sweep with an IoU-derived window and
  kept if its exact IoU is above the threshold; up to 2,048 boxes the pairs are
  resolved as bit rows (:func:`_resolve_graph`), above block by block in score order;
- otherwise 129-2,048 boxes (:func:`_greedy_mid`): the top 64 boxes resolved
  densely, their kept boxes suppress all later ones (in clusters, most of them),
  and the survivors go to one dense block (<= 128 of them), the pair graph (<= 32
  candidate pairs per box) or else the blocked loop;
- otherwise above 2,048 boxes (dense clusters): blocks of undecided boxes look up
  their partners in a 2-D window around their top-left corner
  (:func:`_greedy_windows`), so a suppressed box is never compared again and a
  kept box only with its neighbours;
- negative thresholds or non-finite boxes above 128 boxes: dense blocks
  (:func:`_greedy_blocked`): 64 survivors at a time against each other, then their
  kept boxes against all later survivors.

``max_det`` keeps the first ``max_det`` kept boxes (the loops stop once that many
are kept; it cannot change which ones they are). ``scripts/bench_nms.py``
measures the routes against torchvision.
"""

from __future__ import annotations

import numpy as np

from edgecv.vision import nms_kernel

_BLOCK = 64
# Up to this many boxes, one dense (N, N) IoU matrix resolved with bit masks (fewest numpy calls).
_DENSE_MAX = 128
# Up to this many boxes, _greedy_mid; its survivors go to the pair graph up to this many candidate
# pairs per box, else to the blocked loop (measured with scripts/bench_nms.py).
_MID_MAX = 2048
_MID_MAX_PAIRS_PER_BOX = 32
_SPARSE_FIRST_MAX = 512  # up to here, the pair graph is tried first (its bail-out costs ~10 numpy calls)
# Above _MID_MAX, the pair graph is used up to this many candidate pairs per box (many classes,
# scattered boxes), the windowed route above (dense clusters, where most boxes are suppressed early).
_SPARSE_MAX_PAIRS_PER_BOX = 8
_SPARSE_BLOCK = 128
# Above this many candidate pairs per box, the pair search first drops pairs too far apart in y.
_Y_FILTER_PAIRS_PER_BOX = 8
_POW2 = 2.0 ** np.arange(32)  # bit weights of a 32-bit word
_STABLE_SORT_MAX = 256  # above, the score order comes from quicksort plus a tie fix-up
_WINDOW_BLOCK = 128  # starting block size 64, adapted between 16 and 512
# torchvision.ops.batched_nms switches from the coordinate trick to a per-class
# loop when boxes.numel() > 4000 on CPU; mirrored so the kept set is identical.
_TRICK_MAX_NUMEL = 4000
# Up to this many boxes ONNX Runtime's kernel runs the greedy loop (in C++); above, the numpy routes'
# candidate search scales better where many boxes are kept (scripts/bench_nms.py).
_KERNEL_MAX = 2048
# ONNX Runtime's kernel with the coordinate trick: above this many boxes one score row per class
# (each class's loop meets only its own boxes); below, one row (fewer numpy calls).
_KERNEL_ROWS_MIN = 200


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray | None,
    iou_threshold: float,
    max_det: int | None = None,
    *,
    route: str = "auto",
) -> np.ndarray:
    """Greedy non-maximum suppression, class-aware when ``class_ids`` is given.

    Args:
        xyxy: (N, 4) float32 (or float64) boxes x1 y1 x2 y2. Other dtypes are
            converted to float32; float64 is kept, as torchvision would.
        scores: (N,) scores; higher wins.
        class_ids: (N,) integer class per box, or None for class-agnostic NMS.
        iou_threshold: a box whose IoU with a kept box is > this is dropped.
        max_det: keep at most this many (the highest-scoring survivors).
        route: ``"auto"``: ONNX Runtime's kernel (:mod:`edgecv.vision.nms_kernel`) where it
            keeps torchvision's set (float32, finite boxes with x2 >= x1 and y2 >= y1, threshold
            in [0, 1]), else numpy; ``"numpy"``: numpy always. Both keep the same boxes.

    Returns:
        (K,) int64 indices into the inputs of the kept boxes, by descending
        score (ties: lower index first).

    Raises:
        ValueError: shapes or dtypes do not match the above.
    """
    boxes = np.asarray(xyxy)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must be (N, 4), got {boxes.shape} {boxes.dtype}")
    if boxes.dtype != np.float64:
        boxes = boxes.astype(np.float32, copy=False)
    n = boxes.shape[0]
    scores = np.asarray(scores)
    if scores.shape != (n,):
        raise ValueError(f"scores must be ({n},) to match xyxy, got {scores.shape}")
    if class_ids is not None:
        class_ids = np.asarray(class_ids)
        if class_ids.shape != (n,) or class_ids.dtype.kind not in "iu":
            raise ValueError(
                f"class_ids must be ({n},) integers to match xyxy, got {class_ids.shape} {class_ids.dtype}"
            )
    if max_det is not None and max_det < 0:
        raise ValueError(f"max_det must be >= 0 or None, got {max_det}")
    if route not in ("auto", "numpy"):
        raise ValueError(f"route must be 'auto' or 'numpy', got {route!r}")
    if n == 0 or max_det == 0:
        return np.zeros(0, np.int64)

    per_class = None
    offsets = None
    if class_ids is not None:
        if boxes.size > _TRICK_MAX_NUMEL:
            per_class = class_ids
        else:
            # torchvision's _batched_nms_coordinate_trick, same dtype and rounding (added after the gather).
            offsets = class_ids.astype(boxes.dtype) * (boxes.max() + boxes.dtype.type(1))

    order = _score_order(scores)
    thr = _threshold(iou_threshold, boxes.dtype)
    limit = n if max_det is None else min(max_det, n)
    if route != "numpy" and n <= _KERNEL_MAX and (run := nms_kernel.session()) is not None:
        ordered = boxes[order]
        if offsets is not None:
            ordered += offsets[order, None]
        if nms_kernel.applies(ordered, thr):
            # shifted classes never meet when every input coordinate is >= 0 (a gap of at least 1 between
            # them): then one score row per class is the trick's result, with less work than one row for all
            rows = per_class
            if offsets is not None and n > _KERNEL_ROWS_MIN and boxes.min() >= 0:
                rows = class_ids
            cls = None if rows is None else rows[order]
            return order[nms_kernel.greedy(run, ordered, cls, thr, limit)[:limit]].astype(np.int64, copy=False)
    data = np.empty((5, n), boxes.dtype)  # rows x1 y1 x2 y2 area, columns in score order
    data[:4] = boxes[order].T
    if offsets is not None:
        data[:4] += offsets[order]
    data[4] = (data[2] - data[0]) * (data[3] - data[1])
    if n <= _DENSE_MAX:  # one dense block (always the coordinate trick here: n * 4 <= 4000)
        with np.errstate(invalid="ignore", divide="ignore"):
            ranks = _resolve_dense(_suppresses(data, data, None, None, thr))
    else:
        cls = None if per_class is None else per_class[order]
        ranks = None
        if float(iou_threshold) >= 0 and np.isfinite(data).all():
            iou = float(iou_threshold)
            if n <= _SPARSE_FIRST_MAX or n > _MID_MAX:  # few close pairs: the pair graph (cheap to try here)
                ranks = _greedy_sparse(data, cls, thr, iou, limit, _SPARSE_MAX_PAIRS_PER_BOX)
            if ranks is None and n <= _MID_MAX:
                ranks = _greedy_mid(data, cls, thr, iou, limit)
            elif ranks is None:  # too many close pairs to list: only kept boxes look for partners
                ranks = _greedy_windows(data, cls, thr, iou, limit)
        if ranks is None:
            ranks = _greedy_blocked(data, cls, thr, limit)
    return order[ranks[:limit]].astype(np.int64, copy=False)


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by ascending index (a stable sort's order), as int64.

    Negating a float is exact; other dtypes go through float64 (no unsigned wrap). Above
    ``_STABLE_SORT_MAX`` scores, numpy's quicksort (SIMD; ~9x faster than its stable sort at
    8,400) sorts, and runs of equal scores are then put in index order with a second sort.
    """
    neg = -(scores if scores.dtype.kind == "f" else scores.astype(np.float64))
    n = neg.shape[0]
    if n <= _STABLE_SORT_MAX:
        return np.argsort(neg, kind="stable")
    order = np.argsort(neg)
    s = neg[order]
    if np.isnan(s[-1]):  # NaN (sorted last) never compares equal: leave those to the stable sort
        return np.argsort(neg, kind="stable")
    tie = s[1:] == s[:-1]
    if tie.any():
        run = np.zeros(n, np.int64)
        np.cumsum(~tie, out=run[1:])
        order = order[np.argsort(run * n + order)]  # unique keys: (run, index)
    return order


def _resolve_dense(over: np.ndarray) -> np.ndarray:
    """Greedy resolution of a block: ``over`` (B, B) C-contiguous bool, [i, j] = IoU(i, j) > threshold.

    Returns the kept positions, ascending. Only ``over[i, j]`` with i < j is read in effect: the
    rows are packed into Python ints, ``alive`` holds the undecided boxes that meet any other,
    and each step keeps the lowest alive box and clears its row from ``alive`` (bits j < i are
    already decided, so the lower triangle clears nothing). One Python step per kept box that
    meets another; boxes meeting none are kept without a step. ``over``'s diagonal is cleared.
    """
    b = over.shape[0]
    over.ravel()[:: b + 1] = False
    packed = np.packbits(over, axis=1, bitorder="little")
    involved = packed.any(1)
    keep = ~involved
    alive = int.from_bytes(np.packbits(involved, bitorder="little").tobytes(), "little")
    if alive:
        rows, s = packed.tobytes(), packed.shape[1]
        kept = []
        while alive:
            low = alive & -alive
            i = low.bit_length() - 1
            kept.append(i)
            alive &= ~int.from_bytes(rows[i * s : (i + 1) * s], "little")
            alive &= ~low
        keep[kept] = True
    return np.flatnonzero(keep)


def _greedy_blocked(
    data: np.ndarray, cls: np.ndarray | None, thr: np.generic, limit: int, block: int = _BLOCK
) -> np.ndarray:
    """Greedy NMS over columns already in score order; (K,) kept column indices, ascending.

    Dense: each block of survivors is checked against all later survivors, so the
    cost grows with kept x candidates. Used above 128 boxes for negative thresholds
    and non-finite boxes (where the pair search's geometry does not hold), and for the
    survivors of :func:`_greedy_mid` when they have many close pairs.
    """
    order = np.arange(data.shape[1])
    kept: list[np.ndarray] = []
    n_kept = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        while order.size:
            b = min(block, order.size)
            head = data[:, :b]
            head_cls = None if cls is None else cls[:b]
            sel = _resolve_dense(_suppresses(head, head, head_cls, head_cls, thr))
            kept.append(order[sel])
            n_kept += sel.size
            if n_kept >= limit or order.size == b:
                break
            rest = data[:, b:]
            rest_cls = None if cls is None else cls[b:]
            kept_cls = None if cls is None else head_cls[sel]
            alive = ~_suppresses(np.take(head, sel, axis=1), rest, kept_cls, rest_cls, thr).any(0)
            data = np.compress(alive, rest, axis=1)
            order = order[b:][alive]
            if cls is not None:
                cls = rest_cls[alive]
    return np.concatenate(kept)


def _greedy_mid(data: np.ndarray, cls: np.ndarray | None, thr: np.generic, iou: float, limit: int) -> np.ndarray:
    """Greedy NMS over columns in score order for 129..``_MID_MAX`` boxes; kept column indices, ascending.

    The top ``_BLOCK`` boxes are resolved densely and their kept boxes suppress all later ones
    (in clusters, the best boxes remove most of their neighbours, so the pair graph of the
    survivors is small); the survivors then go to one dense block if at most ``_DENSE_MAX``,
    else to the pair graph (:func:`_greedy_sparse`) if they have few enough close pairs, else
    to the blocked loop.
    """
    b = _BLOCK
    head = data[:, :b]
    head_cls = None if cls is None else cls[:b]
    with np.errstate(invalid="ignore", divide="ignore"):
        sel = _resolve_dense(_suppresses(head, head, head_cls, head_cls, thr))
        if sel.size >= limit:
            return sel
        kept_cls = None if cls is None else head_cls[sel]
        rest_cls = None if cls is None else cls[b:]
        alive = np.flatnonzero(~_suppresses(np.take(head, sel, axis=1), data[:, b:], kept_cls, rest_cls, thr).any(0))
    alive += b
    data = np.take(data, alive, axis=1)
    cls = None if cls is None else cls[alive]
    if data.shape[1] <= _DENSE_MAX:  # few survivors: one dense block
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.concatenate([sel, alive[_resolve_dense(_suppresses(data, data, cls, cls, thr))]])
    rest = _greedy_sparse(data, cls, thr, iou, limit - sel.size, _MID_MAX_PAIRS_PER_BOX)
    if rest is None:
        rest = _greedy_blocked(data, cls, thr, limit - sel.size)
    return np.concatenate([sel, alive[rest]])


def _greedy_windows(
    data: np.ndarray, cls: np.ndarray | None, thr: np.generic, iou: float, limit: int, state: np.ndarray | None = None
) -> np.ndarray | None:
    """Greedy NMS over columns in score order, each box checked only against boxes that can reach it.

    The next block of undecided boxes (64 at first; doubled while its boxes rarely meet,
    halved in dense clusters, 16..512) looks up its partners among the later undecided
    boxes with a 2-D range query; pairs inside the block are resolved in score order
    (:func:`_resolve_pairs`) and the block's kept boxes then suppress their later partners. A box j with IoU(k, j) > t > 0 has its top-left corner within
    ``(1 - t) / t`` box sizes before and ``1 - t`` after k's top-left corner in each axis
    (its overlap with k exceeds t x each extent, and its extent is < 1/t x k's), bounds
    loosened by 0.1 % so float rounding only adds candidates. Corners are bucketed in rows
    (of the median box height) keyed ``(class, row, x)``, so each query is one
    ``searchsorted`` range per row; candidates then get the exact IoU of :func:`_suppresses`.
    ``state`` (0 undecided, 1 kept, 2 suppressed, per column) continues a partial resolution
    in which every kept box's suppression is already applied. Returns None where the bounds
    do not hold (``iou <= 0``).
    """
    if iou <= 0:
        return None
    n = data.shape[1]
    x1, y1 = data[0].astype(np.float64), data[1].astype(np.float64)
    w, h = data[2] - x1, data[3] - y1
    back, fwd = (1 - iou) / iou * 1.001, 1 - iou * 0.999  # corner window, in box sizes
    pos_w, pos_h = np.maximum(w, 0), np.maximum(h, 0)
    g = float(np.median(pos_h)) or 1.0
    y0 = float(y1.min())
    n_rows = int((y1.max() - y0) // g) + 1
    row = ((y1 - y0) // g).astype(np.int64)
    band = np.zeros(n, np.int64) if cls is None else cls.astype(np.int64) * (n_rows + 1)
    xmin, reach = float(x1.min()), float(pos_w.max()) * (back + 1) + 2.0
    span = 2.0 ** np.ceil(np.log2(float(x1.max()) - xmin + 2 * reach + 2.0))
    if (float(band.max()) + n_rows + 1) * span > 2.0**52:
        return None
    shift = reach - xmin
    key = (band + row) * span + (x1 + shift)
    by_key = np.argsort(key)  # any order of equal keys serves the range queries
    sorted_key = key[by_key]
    # per box: its corner window (lo/hi in x, first/last row)
    qx_lo = x1 - back * pos_w + shift
    qx_hi = x1 + fwd * pos_w + shift
    r_lo = np.clip(((y1 - back * pos_h - y0) // g).astype(np.int64), 0, n_rows - 1)
    r_hi = np.clip(((y1 + fwd * pos_h - y0) // g).astype(np.int64), 0, n_rows - 1)

    undecided = np.ones(n, bool) if state is None else state == 0
    kept: list[np.ndarray] = [] if state is None else [np.flatnonzero(state == 1)]
    n_kept, start = 0, 0
    if state is not None:
        limit = n  # kept boxes are spread over the ranks: no early exit
    size = _WINDOW_BLOCK // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        while start < n:
            block = np.flatnonzero(undecided[start:])[:size] + start
            if not block.size:
                break
            last = int(block[-1])
            # every block box's partners among the undecided boxes after it (block members included)
            rows = r_hi[block] - r_lo[block] + 1
            k_of = np.repeat(np.arange(block.size), rows)
            r = r_lo[block][k_of] + (np.arange(k_of.size) - np.repeat(np.cumsum(rows) - rows, rows))
            base = (band[block][k_of] + r) * span
            lo = np.searchsorted(sorted_key, base + qx_lo[block][k_of], side="left")
            hi = np.searchsorted(sorted_key, base + qx_hi[block][k_of], side="right")
            counts = hi - lo
            total = int(counts.sum())
            pk = np.repeat(k_of, counts)  # block positions, ascending
            pj = by_key[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(total)]
            live = undecided[pj] & (pj > block[pk])
            pk, pj = pk[live], pj[live]
            hit = _pairs_above(data, block[pk], pj, thr)
            pk, pj = pk[hit], pj[hit]
            inside = pj <= last
            n_inside = int(np.count_nonzero(inside))
            sel = _resolve_pairs(pk[inside], np.searchsorted(block, pj[inside]), np.zeros(block.size, bool))
            # adapt the block: large where boxes rarely meet (fewer steps), small in dense clusters
            if n_inside < block.size // 2:
                size = min(2 * size, 4 * _WINDOW_BLOCK)
            elif n_inside > 2 * block.size:
                size = max(size // 2, _WINDOW_BLOCK // 8)
            is_kept = np.zeros(block.size, bool)
            is_kept[sel] = True
            undecided[block] = False
            undecided[pj[~inside & is_kept[pk]]] = False
            start = last + 1
            kept.append(block[sel])
            n_kept += sel.size
            if n_kept >= limit:
                break
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.intp)


def _greedy_sparse(
    data: np.ndarray, cls: np.ndarray | None, thr: np.generic, iou: float, limit: int, max_pairs_per_box: float = 1e9
) -> np.ndarray | None:
    """Greedy NMS over columns in score order via the sparse graph of suppressing pairs; None if too dense.

    1. Pair search: a pair can only have IoU > ``iou`` >= 0 if its boxes overlap in x by
       more than ``iou`` x the width of each (the intersection is at most that overlap x the
       height). Boxes sorted by (class, x1) give, per box, a contiguous run of partners
       found with one ``searchsorted``; the bound is loosened by 0.1 % so float rounding
       can only add candidates. The exact IoU of each candidate pair is then computed with
       the same float arithmetic as :func:`_suppresses` (so the same pairs suppress). Above
       ``_Y_FILTER_PAIRS_PER_BOX`` candidates per box, pairs whose top edges are farther apart
       than the window of :func:`_greedy_windows` are dropped first (the same bound in y).
    2. Up to ``_MID_MAX`` boxes, :func:`_resolve_graph`. Above, greedy resolution on the graph
       in score order, ``_SPARSE_BLOCK`` ranks at a time:
       the pairs inside a block are read one by one in source order (a box's suppressors
       are read before its own pairs), then the block's kept boxes suppress all their later
       partners with one scatter. Sorting the pairs by source is a radix sort (int16 keys).
    """
    n = data.shape[1]
    x1 = data[0].astype(np.float64)
    x2 = data[2].astype(np.float64)
    reach = x2 - (iou * (1 - 1e-3)) * (x2 - x1)  # a partner's x1 must be < this
    if cls is None:
        key, query = x1, reach
    else:  # classes side by side on one axis, far enough apart never to meet
        lo = min(x1.min(), reach.min())
        span = 2.0 ** np.ceil(np.log2(max(x1.max(), reach.max()) - lo + 2.0))
        base = cls.astype(np.float64) * span - lo
        key, query = x1 + base, reach + base
    by_x = np.argsort(key)  # equal keys in any order: the first of two finds the second
    hi = np.searchsorted(key[by_x], query[by_x], side="right")
    counts = np.maximum(hi - np.arange(1, n + 1), 0)
    total = int(counts.sum())
    if total > max_pairs_per_box * n:
        return None
    xs = np.take(data, by_x, axis=1)  # columns in x order: pair (p, q) is (first, second) there, p < q
    second = np.arange(total) + np.repeat(np.arange(1, n + 1) - (np.cumsum(counts) - counts), counts)
    first = None
    if iou > 0 and total > _Y_FILTER_PAIRS_PER_BOX * n:
        # many pairs: first drop those whose top edges are farther apart than the window of _greedy_windows
        first = np.repeat(np.arange(n), counts)
        y1 = xs[1].astype(np.float64)
        h = np.maximum(xs[3] - y1, 0)
        dy = y1[second] - y1[first]
        ha = h[first]
        near = (dy < (1 - iou * 0.999) * ha) & (dy > -((1 - iou) / iou * 1.001) * ha)
        first, second = first[near], second[near]
        pa = np.take(xs, first, axis=1)
    else:
        pa = np.repeat(xs, counts, axis=1)  # a sequential fill, cheaper than a gather
    with np.errstate(invalid="ignore", divide="ignore"):
        hit = _iou_above(pa, np.take(xs, second, axis=1), thr)
    first = (np.repeat(np.arange(n), counts) if first is None else first)[hit]
    a, b = by_x[first], by_x[second[hit]]
    src, dst = np.minimum(a, b), np.maximum(a, b)  # the higher-scoring box suppresses the other
    if n <= _MID_MAX:
        return _resolve_graph(n, src, dst)

    # resolve in score order, _SPARSE_BLOCK ranks at a time: pairs inside a block one by one
    # (_resolve_block), then the block's kept boxes suppress their later partners at once
    key_dtype = np.int16 if n <= np.iinfo(np.int16).max else np.int32  # numpy's stable sort is a radix sort for int16
    by_src = np.argsort(src.astype(key_dtype), kind="stable")
    src, dst = src[by_src], dst[by_src]
    starts = np.searchsorted(src, np.arange(0, n + _SPARSE_BLOCK, _SPARSE_BLOCK).clip(max=n))
    dead = np.zeros(n, bool)
    kept: list[np.ndarray] = []
    n_kept = 0
    for blk, s0 in enumerate(range(0, n, _SPARSE_BLOCK)):
        s1 = min(s0 + _SPARSE_BLOCK, n)
        e0, e1 = starts[blk], starts[blk + 1]
        bsrc, bdst = src[e0:e1], dst[e0:e1]
        inside = bdst < s1
        sel = _resolve_pairs(bsrc[inside] - s0, bdst[inside] - s0, dead[s0:s1])
        kept.append(sel + s0)
        n_kept += sel.size
        if n_kept >= limit:
            break
        if bsrc.size:
            is_kept = np.zeros(s1 - s0, bool)
            is_kept[sel] = True
            dead[bdst[~inside & is_kept[bsrc - s0]]] = True
    return np.concatenate(kept)


def _resolve_pairs(src: np.ndarray, dst: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """Greedy resolution of one block: suppression pairs ``src < dst`` (block positions, sorted by src),
    ``dead`` the positions already suppressed from outside. Returns the kept positions, ascending."""
    if not src.size:
        return np.flatnonzero(~dead)
    if src.size > 24 * dead.size:  # dense: one vectorised row per kept box is cheaper than a Python step per pair
        within = np.zeros((dead.size, dead.size), bool)
        within[src, dst] = True
        gone = dead.copy()
        local = []
        for i in range(dead.size):
            if not gone[i]:
                local.append(i)
                gone |= within[i]
        return np.asarray(local, np.intp)
    flags = bytearray(dead.astype(np.uint8).tobytes())
    for i, j in zip(src.tolist(), dst.tolist()):  # every pair that could suppress i was read before it
        if not flags[i]:
            flags[j] = 1
    return np.flatnonzero(np.frombuffer(bytes(flags), np.uint8) == 0)


def _resolve_graph(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Greedy resolution of suppression pairs ``src < dst`` (ranks, any order, no duplicates) among ``n`` boxes.

    Returns the kept ranks, ascending. Each source's row of partners becomes a bit row (32-bit
    words summed in float64 by ``bincount``: distinct powers of two add exactly), and the rows are
    resolved as in :func:`_resolve_dense`: one Python step per kept box that meets another.
    """
    succ = np.zeros(n, bool)
    succ[src] = True
    involved = succ.copy()
    involved[dst] = True
    keep = ~involved
    if src.size:
        row_of = np.cumsum(succ) - 1
        words = (n + 31) >> 5
        n_rows = int(row_of[-1]) + 1
        rows = np.bincount(row_of[src] * words + (dst >> 5), weights=_POW2[dst & 31], minlength=n_rows * words)
        buf, s = rows.astype("<u4").tobytes(), 4 * words
        alive = int.from_bytes(np.packbits(involved, bitorder="little").tobytes(), "little")
        has_row = int.from_bytes(np.packbits(succ, bitorder="little").tobytes(), "little")
        kept = []
        while alive:
            low = alive & -alive
            kept.append(low.bit_length() - 1)
            alive ^= low
            if has_row & low:
                r = (has_row & (low - 1)).bit_count()  # rows are stored for sources only, in rank order
                alive &= ~int.from_bytes(buf[r * s : (r + 1) * s], "little")
        keep[kept] = True
    return np.flatnonzero(keep)


def _threshold(iou_threshold: float, dtype: np.dtype) -> np.generic:
    """The largest ``dtype`` value t with ``x > t`` <=> ``float64(x) > iou_threshold`` for all x of ``dtype``."""
    thr = float(iou_threshold)
    t = dtype.type(thr)
    if float(t) > thr:  # compare in float64: float32 > python float would round thr to float32
        t = np.nextafter(t, dtype.type(-np.inf))
    return t


def _suppresses(
    a: np.ndarray, b: np.ndarray, a_cls: np.ndarray | None, b_cls: np.ndarray | None, thr: np.generic
) -> np.ndarray:
    """(P, Q) bool: IoU(a_p, b_q) > thr (and same class when classes are given).

    ``a``: (5, P) and ``b``: (5, Q) rows x1 y1 x2 y2 area, arithmetic as torchvision's kernel.
    """
    lo = np.maximum(a[:2, :, None], b[:2, None, :])
    wh = np.minimum(a[2:4, :, None], b[2:4, None, :])
    wh -= lo
    np.maximum(wh, np.zeros(wh.shape, wh.dtype), out=wh)  # 3x faster than vs a scalar 0
    inter = wh[0] * wh[1]
    union = a[4, :, None] + b[4, None, :]
    union -= inter
    out = np.divide(inter, union, out=inter) > thr
    if a_cls is not None and b_cls is not None:
        out &= a_cls[:, None] == b_cls[None, :]
    return out


def _pairs_above(data: np.ndarray, a: np.ndarray, b: np.ndarray, thr: np.generic) -> np.ndarray:
    """IoU(a[i], b[i]) > thr for each pair; ``data``: (5, N) rows x1, y1, x2, y2, area; ``a``, ``b``: (P,) indices."""
    return _iou_above(np.take(data, a, axis=1), np.take(data, b, axis=1), thr)


def _iou_above(pa: np.ndarray, pb: np.ndarray, thr: np.generic) -> np.ndarray:
    """(P,) bool: IoU > thr for pairs of columns of ``pa``, ``pb`` (5, P), with torchvision's float arithmetic."""
    wh = np.minimum(pa[2:4], pb[2:4])
    wh -= np.maximum(pa[:2], pb[:2])
    np.maximum(wh, np.zeros(wh.shape, wh.dtype), out=wh)
    inter = wh[0] * wh[1]
    union = pa[4] + pb[4]
    union -= inter
    return np.divide(inter, union, out=inter) > thr
