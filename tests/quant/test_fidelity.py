"""Fidelity at the operating point, bootstrap intervals, and the gate's search on a scripted held-out set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecv.bench.accuracy import DetectionEvaluator
from edgecv.quant import fidelity as fid
from edgecv.quant.gate import Evaluation, GateLimits, best_trial, run_gate
from edgecv.results import Detections


def test_match_same_class_iou_half_highest_score_first() -> None:
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    ref_scores = np.array([0.9, 0.8, 0.7])
    ref_cls = np.array([0, 1, 2])
    cand = np.array(
        [
            [0, 0, 10, 10],  # same box, same class: match, score 0.9 -> 0.5
            [20, 20, 30, 30],  # same box, other class: no match
            [50, 50, 60, 62],  # IoU 100/120 >= 0.5: match
            [0, 0, 10, 11],  # duplicate of the first, lower score: reference already taken
        ],
        np.float32,
    )
    scores = np.array([0.5, 0.95, 0.6, 0.4])
    classes = np.array([0, 2, 2, 0])
    m = fid.match_detections(ref, ref_scores, ref_cls, cand, scores, classes)
    assert (m.reference, m.candidate, m.matched) == (3, 4, 2)
    assert sorted(np.round(m.score_change, 6).tolist()) == [-0.4, -0.1]
    assert sorted(np.round(m.iou, 4).tolist()) == [round(100 / 120, 4), 1.0]
    summary = fid.DetectionFidelity([m]).summary()
    assert summary["recall"] == pytest.approx(2 / 3) and summary["precision"] == pytest.approx(0.5)
    assert summary["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert summary["worst_score_change"] == pytest.approx(-0.4) and summary["mean_score_change"] == pytest.approx(-0.25)


def test_below_half_iou_is_not_a_match() -> None:
    ref = np.array([[0, 0, 10, 10]], np.float32)
    m = fid.match_detections(ref, np.array([0.9]), np.array([0]), np.array([[5, 0, 15, 10]], np.float32), np.array([0.9]), np.array([0]))
    assert m.matched == 0  # IoU 1/3


def test_combine_equals_one_evaluator_over_all_images() -> None:
    """The bootstrap's per-image evaluators, combined, give exactly the evaluator fed all images (the reference)."""
    rng = np.random.default_rng(0)
    whole = DetectionEvaluator(3)
    parts = []
    for i in range(12):
        gt = rng.uniform(0, 80, (4, 2))
        gt = np.hstack([gt, gt + rng.uniform(5, 30, (4, 2))]).astype(np.float32)
        gt_cls = rng.integers(0, 3, 4)
        boxes = (gt + rng.normal(0, 3, gt.shape)).astype(np.float32)
        pred = Detections(boxes, rng.uniform(0.05, 1, 4).astype(np.float32), rng.integers(0, 3, 4).astype(np.int32))
        whole.add(i, gt, gt_cls, pred)
        part = DetectionEvaluator(3)
        part.add(0, gt, gt_cls, pred)
        parts.append(part)
    assert DetectionEvaluator.combine(parts).compute().map == pytest.approx(whole.compute().map, abs=1e-12)
    twice = DetectionEvaluator.combine(parts + parts).compute().map  # a bootstrap draw may repeat images
    assert 0 <= twice <= 1


def test_bootstrap_interval_narrows_with_more_images_and_sizes_the_need() -> None:
    rng = np.random.default_rng(1)

    def width(n: int) -> float:
        matches = [fid.DetectionMatch(5, 5, int(k), np.zeros(int(k)), np.ones(int(k))) for k in rng.binomial(5, 0.9, n)]
        low, high = fid.bootstrap_interval(fid.DetectionFidelity(matches).resampled(fid.resample_indices(n))["recall"])
        return high - low

    small, large = width(10), width(400)
    assert large < small / 3  # ~ 1/sqrt(n): sqrt(40) = 6.3
    assert fid.images_needed(10, small, small / 2) == 40
    assert fid.images_needed(10, 0.01, 0.05) == 10 and fid.images_needed(10, 0.2, 0.0) == -1


def test_pixel_agreement_and_miou() -> None:
    ref = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    cand = np.array([[0, 0, 1, 0], [0, 0, 1, 1]])
    f = fid.SegmentationFidelity([fid.confusion(ref, cand, 2, None)]).summary()
    assert f["pixel_agreement"] == pytest.approx(7 / 8)
    assert f["miou"] == pytest.approx(100 * (4 / 5 + 3 / 4) / 2)


# ---------------------------------------------------------------- the gate's search, scripted


def _evaluation(score: float, recall: float) -> Evaluation:
    return Evaluation(score, {"recall": recall, "precision": 1.0, "mean_score_change": 0.0}, 10)


class _ScriptedHeldOut:
    """Scores by number of float layers: non-monotone, as real ones are (k=1 scores below k=0)."""

    task = "detect"
    reference = Path("fp32")

    def __init__(self, table: dict[int, tuple[float, float]]) -> None:
        self.table = table
        self.fp32 = _evaluation(100.0, 1.0)
        self.calls: list[tuple[int, int | None]] = []

    def fp32_on(self, limit: int | None) -> Evaluation:
        return self.fp32

    def raw_outputs(self, path: Path, count: int) -> list[np.ndarray]:
        k = 0 if path == self.reference else int(str(path))
        return [np.full((1, 2, 4), float(k)) + np.arange(8).reshape(1, 2, 4)]

    def evaluate(self, path: Path, *, limit: int | None = None, stop: GateLimits | None = None, cache: object = None) -> Evaluation:
        k = int(str(path))
        self.calls.append((k, limit))
        return _evaluation(*self.table[k])


def test_search_never_returns_worse_than_a_trial_it_saw() -> None:
    layers = {f"l{i}": (f"n{i}",) for i in range(4)}
    # k float layers -> (score, recall); nothing passes recall >= 0.95, k = 0 is closest
    table = {0: (99.0, 0.93), 1: (88.0, 0.80), 2: (95.0, 0.90), 3: (96.0, 0.91), 4: (97.0, 0.92)}
    held = _ScriptedHeldOut(table)
    everything = {n for names in layers.values() for n in names}

    def build(kept: list[str]) -> Path:
        return Path(str(len(set(kept) & everything)))

    limits = GateLimits(max_drop=5.0)
    result = run_gate(build, layers, held, limits=limits, subset=5)  # type: ignore[arg-type]
    seen = [t for t in result.trials if t.full is not None]
    assert len(seen) >= 2 and not result.passed
    best_margin = max(t.full.margin(limits, "detect", 100.0) for t in seen)
    assert result.evaluation.margin(limits, "detect", 100.0) == pytest.approx(best_margin)
    assert result.evaluation.score >= max(t.full.score for t in seen if t.full.margin(limits, "detect", 100.0) == best_margin)


def test_best_trial_prefers_passing_with_fewest_float_layers() -> None:
    from edgecv.quant.gate import Trial

    trials = [Trial(0, full_pass=False, margin=-0.5), Trial(3, full_pass=True, margin=0.1), Trial(5, full_pass=True, margin=0.9), Trial(1, full_pass=False, margin=-2.0)]
    for t in trials:
        t.full = _evaluation(90.0, 1.0)
    assert best_trial(trials).kept == 3
    assert best_trial([t for t in trials if not t.full_pass]).kept == 0  # none passes: closest to passing, not the last tried


@pytest.mark.parametrize("threshold", [1, 5, 17, 40, 63, 64])
def test_search_needs_log_n_trials_and_returns_the_fewest_float_layers_that_pass(threshold: int) -> None:
    """64 layers, a monotone curve passing from ``threshold`` float layers on: the answer is exactly
    ``threshold``, found with O(log n) evaluations (a linear walk would take up to 64)."""
    n = 64
    layers = {f"l{i}": (f"n{i}",) for i in range(n)}
    table = {k: (100.0 if k >= threshold else 90.0, 1.0 if k >= threshold else 0.9) for k in range(n + 1)}
    held = _ScriptedHeldOut(table)
    everything = {name for names in layers.values() for name in names}

    def build(kept: list[str]) -> Path:
        return Path(str(len(set(kept) & everything)))

    result = run_gate(build, layers, held, limits=GateLimits(max_drop=1.0), subset=5)  # type: ignore[arg-type]
    assert result.passed and len(result.kept_layers) == threshold
    trials = [c for c in held.calls if c[0] != 0]
    assert len(trials) <= 4 * int(np.ceil(np.log2(n))) + 2, trials  # doubling + bisect on the subset, then on all
    assert len({k for k, _ in trials}) <= 2 * int(np.ceil(np.log2(n))) + 2


def _held_counts(refs: list[int]) -> object:
    """A HeldOut with only what certain_failure reads (per-image reference counts)."""
    from edgecv.quant.gate import HeldOut

    held = object.__new__(HeldOut)
    held.task = "detect"
    held._reference_counts = np.array(refs, np.int64)
    return held


def test_early_stop_only_when_the_limits_cannot_hold_whatever_the_rest_gives() -> None:
    """Random per-image match counts: every prefix certain_failure flags fails the limits both with
    the images that really follow and with the best possible rest (every remaining image perfect);
    on the complete set it says exactly whether recall/precision fail."""
    from edgecv.quant.gate import Scored

    rng = np.random.default_rng(0)
    limits = GateLimits(min_recall=0.9, min_precision=0.85)
    empty = np.zeros(0)
    flagged = 0
    for _ in range(300):
        n = int(rng.integers(1, 12))
        refs = rng.integers(0, 6, n).tolist()
        matches = []
        for r in refs:
            hit = int(rng.integers(max(r - 1, 0) if rng.random() < 0.7 else 0, r + 1))
            cand = hit + int(rng.integers(0, 2 if rng.random() < 0.7 else 4))
            matches.append(fid.DetectionMatch(r, cand, hit, empty, empty))
        held = _held_counts(refs)

        def fails(ms: list[fid.DetectionMatch]) -> bool:
            s = fid.DetectionFidelity(ms).summary()
            return s["recall"] < limits.min_recall or s["precision"] < limits.min_precision

        for seen in range(n + 1):
            stop = held.certain_failure(Scored(None, [None] * seen, matches[:seen]), n, limits)  # type: ignore[attr-defined]
            if seen == n:
                assert stop == fails(matches)
            if stop:
                flagged += 1
                best_rest = [fid.DetectionMatch(r, r, r, empty, empty) for r in refs[seen:]]
                assert fails(matches) and fails(matches[:seen] + best_rest)
    assert flagged > 100  # the bound does stop evaluations


def test_search_bisects_on_all_images_when_the_subset_overshoots() -> None:
    """The subset needs 30 float layers, all images only 21: the full-set narrowing still finds 21."""
    n = 64
    layers = {f"l{i}": (f"n{i}",) for i in range(n)}
    full = {k: (100.0, 1.0) if k >= 21 else (90.0, 0.9) for k in range(n + 1)}
    sub = {k: (100.0, 1.0) if k >= 30 else (90.0, 0.9) for k in range(n + 1)}

    class Noisy(_ScriptedHeldOut):
        def evaluate(self, path: Path, *, limit: int | None = None, stop: GateLimits | None = None, cache: object = None) -> Evaluation:
            k = int(str(path))
            self.calls.append((k, limit))
            return _evaluation(*(sub if limit else full)[k])

    held = Noisy(full)
    everything = {name for names in layers.values() for name in names}
    result = run_gate(lambda kept: Path(str(len(set(kept) & everything))), layers, held, limits=GateLimits(max_drop=1.0), subset=5)  # type: ignore[arg-type]
    assert result.passed and len(result.kept_layers) == 21
    assert {t.kept for t in result.trials if t.full_pass} >= {21} and all(not t.full_pass for t in result.trials if t.kept < 21)
