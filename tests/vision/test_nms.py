"""nms() against plain Python references, and against torchvision when it is importable.

Every test runs twice: on the default route (ONNX Runtime's kernel where it applies) and on
the numpy routes alone, so both keep exactly torchvision's set.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

from edgecv.vision import nms as nms_module
from edgecv.vision.nms import nms


@pytest.fixture(autouse=True, params=["auto", "numpy"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "nms", functools.partial(nms_module.nms, route=request.param))
    return request.param

# Thresholds that are exact in binary: with integer box coordinates every area,
# intersection and union is exact in float32 too, so float32 IoU > thr gives the
# same answer as exact arithmetic and a float64 reference is an exact oracle.
DYADIC = (0.5, 0.25, 0.375, 0.625, 0.75)


def ref_nms_exact(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None, thr: float) -> list[int]:
    """Greedy NMS in plain Python: stable descending score order, IoU > thr suppresses, same class only."""
    b = boxes.astype(np.float64).tolist()
    s = scores.tolist()
    c = [0] * len(b) if class_ids is None else class_ids.tolist()
    order = sorted(range(len(b)), key=lambda i: -s[i])  # sorted() is stable
    keep: list[int] = []
    suppressed = [False] * len(b)
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        x1, y1, x2, y2 = b[i]
        area_i = (x2 - x1) * (y2 - y1)
        for j in order[pos + 1 :]:
            if suppressed[j] or c[j] != c[i]:
                continue
            u1, v1, u2, v2 = b[j]
            inter = max(0.0, min(x2, u2) - max(x1, u1)) * max(0.0, min(y2, v2) - max(y1, v1))
            union = area_i + (u2 - u1) * (v2 - v1) - inter
            if union > 0 and inter / union > thr:  # 0/0 (two empty boxes) suppresses nothing
                suppressed[j] = True
    return keep


def ref_torchvision(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None, thr: float) -> list[int]:
    """Line-by-line transcription of torchvision's batched_nms + CPU nms kernel, in float32 scalars."""
    boxes = boxes.astype(np.float32)
    n = len(boxes)
    per_class = class_ids is not None and boxes.size > 4000  # torchvision's _batched_nms_vanilla
    if class_ids is not None and not per_class:  # _batched_nms_coordinate_trick
        offsets = class_ids.astype(np.float32) * (boxes.max() + np.float32(1))
        boxes = boxes + offsets[:, None]
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = sorted(range(n), key=lambda i: -float(scores[i]))
    suppressed = [False] * n
    keep = []
    with np.errstate(invalid="ignore"):
        for pos, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            for j in order[pos + 1 :]:
                if suppressed[j] or (per_class and class_ids[j] != class_ids[i]):
                    continue
                w = max(np.float32(0), min(x2[i], x2[j]) - max(x1[i], x1[j]))
                h = max(np.float32(0), min(y2[i], y2[j]) - max(y1[i], y1[j]))
                inter = w * h
                ovr = inter / (areas[i] + areas[j] - inter)  # float32
                if float(ovr) > thr:  # C++: float promoted to double
                    suppressed[j] = True
    return keep


def grid_case(seed: int, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer boxes crowded in a 200 px square (lots of overlap), incl. zero-area, duplicates and score ties."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 150, (n, 2))
    wh = rng.integers(0, 60, (n, 2))
    wh[rng.random((n, 2)) < 0.05] = 0  # zero width and/or height
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if n > 4:
        dup = rng.integers(0, n, n // 5)
        boxes[dup[: len(dup) // 2]] = boxes[dup[len(dup) // 2 : 2 * (len(dup) // 2)]]
    scores = (rng.integers(0, 8, n) / 8).astype(np.float32)  # only 8 distinct values: many ties
    return boxes, scores, rng.integers(0, n_classes, n).astype(np.int32)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 40, 150, 500])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_exact_reference_on_integer_boxes(n: int, seed: int) -> None:
    boxes, scores, classes = grid_case(seed * 1000 + n, n, n_classes=4)
    thr = DYADIC[(seed + n) % len(DYADIC)]
    for cls in (None, classes):
        got = nms(boxes, scores, cls, thr)
        assert got.dtype == np.int64
        assert got.tolist() == ref_nms_exact(boxes, scores, cls, thr)


def test_class_aware_above_1000_boxes_uses_per_class_nms() -> None:
    boxes, scores, classes = grid_case(7, 1100, n_classes=3)  # > 4000 numbers: torchvision's per-class path
    assert nms(boxes, scores, classes, 0.5).tolist() == ref_nms_exact(boxes, scores, classes, 0.5)


@pytest.mark.parametrize("n", [100, 250])  # the dense route (<= 128 boxes) and the mid-size routes
@pytest.mark.parametrize("thr", [0.3, 0.45, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torchvision_arithmetic_on_float_boxes(n: int, thr: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-0.5, 300, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 80, (n, 2))], axis=1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    scores[::7] = scores[3]  # ties
    classes = rng.integers(0, 5, n)
    for cls in (None, classes):
        assert nms(boxes, scores, cls, thr).tolist() == ref_torchvision(boxes, scores, cls, thr)


def test_iou_exactly_at_threshold_is_kept() -> None:
    # 12x10 boxes shifted by 4: inter 80, union 160, IoU exactly 0.5 in float32.
    boxes = np.array([[0, 0, 12, 10], [4, 0, 16, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, None, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, None, np.nextafter(0.5, 0)).tolist() == [0]
    # 10x10 boxes shifted by 5: IoU 50/150 = 1/3, which float32 rounds *up* to 0.33333334.
    # torchvision compares that float32 to the float64 threshold, so 1/3 suppresses ...
    third = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    assert nms(third, scores, None, 1 / 3).tolist() == [0]
    # ... and the float32 value itself as threshold keeps both.
    assert nms(third, scores, None, float(np.float32(1 / 3))).tolist() == [0, 1]


def test_zero_area_boxes_do_not_produce_nan_suppression() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [5, 5, 5, 9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    with np.errstate(all="raise"):  # no warnings leak out of nms
        assert nms(boxes, scores, None, 0.0).tolist() == [0, 1, 2, 3]


def test_ties_keep_lower_index_first_and_output_is_score_ordered() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [100, 0, 110, 10]], np.float32)
    scores = np.array([0.5, 0.5, 0.5, 0.9], np.float32)
    assert nms(boxes, scores, None, 0.5).tolist() == [3, 0, 2]


def test_other_classes_are_not_suppressed() -> None:
    boxes = np.array([[0, 0, 10, 10]] * 3, np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, None, 0.5).tolist() == [0]


def test_max_det_is_a_prefix_of_the_full_result() -> None:
    boxes, scores, classes = grid_case(3, 300, n_classes=2)
    full = nms(boxes, scores, classes, 0.5)
    assert len(full) > 10
    for k in (0, 1, 5, len(full), len(full) + 10):
        assert nms(boxes, scores, classes, 0.5, max_det=k).tolist() == full[:k].tolist()


def test_float64_and_empty_inputs() -> None:
    boxes, scores, _ = grid_case(4, 60, n_classes=1)
    assert nms(boxes.astype(np.float64), scores, None, 0.5).tolist() == ref_nms_exact(boxes, scores, None, 0.5)
    empty = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), 0.5)
    assert empty.dtype == np.int64 and empty.shape == (0,)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"xyxy must be \(N, 4\)"):
        nms(np.zeros((3, 5), np.float32), np.zeros(3, np.float32), None, 0.5)
    with pytest.raises(ValueError, match="scores must be"):
        nms(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), None, 0.5)
    with pytest.raises(ValueError, match="class_ids must be"):
        nms(np.zeros((3, 4), np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32), 0.5)


def test_same_kept_set_as_torchvision_batched_nms() -> None:
    ops = pytest.importorskip("torchvision.ops")
    import torch

    rng = np.random.default_rng(0)
    for n in (0, 1, 50, 400, 1500):  # 1500 boxes: torchvision's per-class path
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(0, 60, (n, 2))], axis=1).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        classes = rng.integers(0, 6, n)
        for thr in (0.3, 0.5, 0.7):
            want = ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), thr)
            got = nms(boxes, scores, classes, thr)
            assert sorted(got.tolist()) == sorted(want.tolist())
            want = ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr)
            assert nms(boxes, scores, None, thr).tolist() == want.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_graph_path_matches_the_dense_loop(seed: int) -> None:
    """Inputs big enough for the sparse pair-graph path give what the dense blocked loop gives."""
    from edgecv.vision import nms as mod

    rng = np.random.default_rng(seed)
    n = 3000
    xy = rng.uniform(0, 2000, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 90, (n, 2))], axis=1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 7, n)
    for cls in (None, classes):
        for thr in (0.0, 0.3, 0.45, 0.8):
            order = np.argsort(-scores.astype(np.float64), kind="stable")
            data = np.empty((5, n), np.float32)
            data[:4] = boxes[order].T
            data[4] = (data[2] - data[0]) * (data[3] - data[1])
            c = None if cls is None else cls[order]
            t = mod._threshold(thr, np.dtype(np.float32))
            dense = mod._greedy_blocked(data, c, t, n).tolist()
            sparse = mod._greedy_sparse(data, c, t, thr, n)
            assert sparse is not None and sparse.tolist() == dense
            if thr > 0:
                assert mod._greedy_windows(data, c, t, thr, n).tolist() == dense


def test_long_suppression_chain_is_resolved_exactly() -> None:
    """A chain where each box suppresses only the next needs more rounds than the vectorised limit."""
    n = 400
    x = np.arange(n, dtype=np.float32) * 4  # 10-wide boxes shifted by 4: IoU 6/14 = 0.43 with the next
    boxes = np.stack([x, np.zeros(n, np.float32), x + 10, np.full(n, 10, np.float32)], 1)
    scores = np.linspace(1, 0.1, n).astype(np.float32)
    assert nms(boxes, scores, None, 0.4).tolist() == ref_nms_exact(boxes, scores, None, 0.4)
    assert nms(boxes, scores, None, 0.4).tolist() == list(range(0, n, 2))


def test_same_kept_set_as_torchvision_on_yolo_like_candidates() -> None:
    """The benchmark's grid (scripts/bench_nms.py): 100 / 1,000 / 8,400 candidates x 1 / 80 classes."""
    ops = pytest.importorskip("torchvision.ops")
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    from bench_nms import scene

    for kind in ("yolo", "scattered"):
        for n in (100, 1000, 8400):
            for nc in (1, 80):
                boxes, scores, cls = scene(kind, n, nc, seed=n + nc + 1)
                want = ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(cls), 0.45)
                assert nms(boxes, scores, cls, 0.45).tolist() == want.tolist(), (kind, n, nc)


@pytest.mark.parametrize("n_classes", [1, 3, 80])
def test_every_route_gives_the_dense_result_on_clustered_candidates(n_classes: int) -> None:
    """YOLO-like clouds of boxes (the windowed route, its adaptive blocks and dense fallback) and max_det."""
    import sys
    from pathlib import Path

    from edgecv.vision import nms as mod

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    from bench_nms import scene

    for n in (129, 300, 1000, 2048, 2500):
        boxes, scores, cls = scene("yolo", n, n_classes, seed=n + n_classes)
        scores[::5] = scores[3]  # ties too
        for c in (None, cls):
            got = nms(boxes, scores, c, 0.45)
            per_class = c is not None and boxes.size > 4000
            b = boxes if c is None or per_class else boxes + (c.astype(np.float32) * (boxes.max() + 1))[:, None]
            order = np.argsort(-scores.astype(np.float64), kind="stable")
            data = np.empty((5, n), np.float32)
            data[:4] = b[order].T
            data[4] = (data[2] - data[0]) * (data[3] - data[1])
            t = mod._threshold(0.45, np.dtype(np.float32))
            want = order[mod._greedy_blocked(data, c[order] if per_class else None, t, n)]
            assert got.tolist() == want.tolist()
            assert nms(boxes, scores, c, 0.45, max_det=17).tolist() == want[:17].tolist()


def _greedy_reference(upper: np.ndarray) -> list[int]:
    """Plain greedy resolution: ranks 0..n-1 in order, ``upper[i, j]`` (i < j): i suppresses j if i is kept."""
    n = upper.shape[0]
    rows = upper.tolist()
    dead = [False] * n
    kept = []
    for i in range(n):
        if dead[i]:
            continue
        kept.append(i)
        for j in range(i + 1, n):
            if rows[i][j]:
                dead[j] = True
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_bit_mask_resolutions_match_plain_greedy(seed: int) -> None:
    """The dense (matrix) and the pair-graph bit-mask resolutions against a plain greedy loop, incl. > 64 / > 1024 boxes."""
    from edgecv.vision import nms as mod

    rng = np.random.default_rng(seed)
    for n in (1, 2, 31, 32, 33, 64, 65, 128, 700, 1100):
        density = rng.choice([0.0, 0.002, 0.02, 0.3])
        upper = np.triu(rng.random((n, n)) < density, 1)
        want = _greedy_reference(upper)
        over = upper | upper.T  # _resolve_dense reads a symmetric matrix (what _suppresses gives)
        over[np.diag_indices(n)] = rng.random(n) < 0.5  # the diagonal must not matter
        assert mod._resolve_dense(over).tolist() == want
        src, dst = np.nonzero(upper)
        shuffle = rng.permutation(src.size)  # pairs come in any order
        assert mod._resolve_graph(n, src[shuffle], dst[shuffle]).tolist() == want


@pytest.mark.parametrize("seed", range(3))
def test_small_and_mid_sizes_match_torchvision_batched_nms(seed: int) -> None:
    """Every route boundary (128/129 dense, 129-300 dense survivors, 1000/1001 coordinate trick, 2048/2049 mid
    routes) against torchvision, on YOLO-like clusters and scattered boxes, with 1, 3 and 80 classes, score ties
    and several thresholds."""
    ops = pytest.importorskip("torchvision.ops")
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    from bench_nms import scene

    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 50, 100, 128, 129, 200, 300, 400, 1000, 1001, 2048, 2049):
        for kind in ("yolo", "scattered"):
            for nc in (1, 3, 80):
                boxes, scores, cls = scene(kind, n, nc, seed=int(rng.integers(1 << 30)))
                if seed:  # ties: a few distinct scores
                    scores = np.round(scores * 8 * seed).astype(np.float32) / np.float32(8 * seed)
                tb, ts, tc = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(cls)
                for thr in (0.0, 0.3, 0.45, 0.7):
                    want = ops.batched_nms(tb, ts, tc, thr).tolist()
                    got = nms(boxes, scores, cls, thr).tolist()
                    if seed and n * 4 > 4000:  # per-class path: torchvision's final sort is not stable on ties
                        assert sorted(got) == sorted(want), (kind, n, nc, thr)
                    else:
                        assert got == want, (kind, n, nc, thr)
                    assert nms(boxes, scores, None, thr).tolist() == ops.nms(tb, ts, thr).tolist(), (kind, n, thr)
                full = nms(boxes, scores, cls, 0.45)
                assert nms(boxes, scores, cls, 0.45, max_det=5).tolist() == full[:5].tolist()


def test_score_order_is_the_stable_descending_order() -> None:
    """Above 256 scores the order comes from quicksort plus a tie fix-up: same as a stable sort of -scores."""
    from edgecv.vision.nms import _score_order

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(200, 3000))
        s = rng.random(n).astype(np.float32)
        kind = trial % 4
        if kind == 1:  # many ties
            s = np.round(s * 10) / 10
        elif kind == 2:  # +0.0 and -0.0 compare equal
            s[rng.random(n) < 0.1] = 0.0
            s[rng.random(n) < 0.05] = -0.0
        elif kind == 3:
            s[rng.random(n) < 0.05] = np.nan
        s = s.astype(np.float64) if trial % 3 == 0 else s
        assert _score_order(s).tolist() == np.argsort(-s, kind="stable").tolist(), trial
        u = rng.integers(0, 5, n).astype(np.uint8)  # unsigned: no wrap-around when negated
        assert _score_order(u).tolist() == np.argsort(-u.astype(np.float64), kind="stable").tolist()
