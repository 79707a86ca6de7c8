"""edgecv's ByteTrack against Roboflow's ``trackers`` ByteTrack on the same detections.

Needs ``trackers`` (it pulls opencv-python and supervision) and ``motmetrics``'
data files: they live in their own venv, ``.venv-track``, and CI runs this file
there (``-m trackers``); the main venv skips it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecv.results import Detections
from edgecv.track import ByteTrack, TrackConfig
from edgecv.track.mot import as_pedestrian_gt, mot_lines, noisy_detections, read_mot

pytestmark = pytest.mark.trackers
sv = pytest.importorskip("supervision")
trackers = pytest.importorskip("trackers")
motmetrics = pytest.importorskip("motmetrics")

DATA = Path(motmetrics.__file__).parent / "data"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")


def reference_ids(tracker, d: Detections) -> np.ndarray:
    """The reference's tracker_id per input row (it returns the rows regrouped by stage)."""
    sd = sv.Detections(xyxy=d.xyxy.copy(), confidence=d.scores.copy(), class_id=d.class_ids.copy(), data={"row": np.arange(len(d))})
    out = tracker.update(sd)
    if len(d) == 0:
        return np.zeros(0, np.int64)
    ids = np.full(len(d), -2, np.int64)
    ids[out.data["row"]] = out.tracker_id
    assert (ids != -2).all(), "the reference dropped a detection"
    return ids


def reference_for(cfg: TrackConfig):
    return trackers.ByteTrackTracker(
        lost_track_buffer=cfg.track_buffer,
        frame_rate=cfg.frame_rate,
        track_activation_threshold=cfg.new_track_thresh,
        minimum_consecutive_frames=cfg.min_hits,
        minimum_iou_threshold=cfg.match_iou,
        high_conf_det_threshold=cfg.high_thresh,
    )


def crossing_scene(seed: int, n_objects: int = 12, n_frames: int = 120) -> list[Detections]:
    """Objects on straight lines that cross, appear and leave, with score dips, misses and clutter."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 600, (n_objects, 2))
    vel = rng.normal(0, 4, (n_objects, 2))
    size = rng.uniform(20, 80, (n_objects, 2))
    born = rng.integers(0, n_frames // 2, n_objects)
    out = []
    for t in range(n_frames):
        alive = (born <= t) & (rng.random(n_objects) > 0.1)
        xy = start[alive] + vel[alive] * (t - born[alive])[:, None] + rng.normal(0, 1.5, (int(alive.sum()), 2))
        boxes = np.concatenate([xy, xy + size[alive]], axis=1)
        scores = np.clip(rng.normal(0.7, 0.2, len(boxes)), 0.05, 1.0)
        clutter = rng.uniform(0, 600, (rng.poisson(1.0), 2))
        boxes = np.concatenate([boxes, np.concatenate([clutter, clutter + 30], axis=1)])
        scores = np.concatenate([scores, rng.uniform(0.1, 0.6, len(clutter))])
        out.append(Detections(boxes.astype(np.float32), scores.astype(np.float32), np.zeros(len(boxes), np.int32)))
    return out


def agreement(frames: list[Detections], cfg: TrackConfig) -> tuple[int, int]:
    ours, ref = ByteTrack(cfg), reference_for(cfg)
    same = total = 0
    for d in frames:
        a = ours.update(d).tracker_id
        b = reference_ids(ref, d)
        same += int((a == b).sum())
        total += len(d)
    return same, total


@pytest.mark.parametrize("seq", SEQUENCES)
@pytest.mark.parametrize("seed", range(3))
def test_same_ids_as_trackers_on_noisy_mot_ground_truth(seq: str, seed: int) -> None:
    frames = noisy_detections(read_mot(DATA / seq / "gt.txt"), seed=seed)
    same, total = agreement(frames, TrackConfig())
    assert total > 300
    assert same == total  # every detection gets the same track ID (or the same -1)


@pytest.mark.parametrize(
    "cfg",
    [TrackConfig(), TrackConfig(high_thresh=0.5, new_track_thresh=0.5, match_iou=0.3, min_hits=1, track_buffer=10), TrackConfig(min_hits=3, track_buffer=60, frame_rate=15)],
)
def test_same_ids_as_trackers_on_crossing_objects(cfg: TrackConfig) -> None:
    for seed in range(4):
        same, total = agreement(crossing_scene(seed), cfg)
        assert same == total, f"seed {seed}: {same}/{total}"


def test_same_mot_metrics_as_trackers(tmp_path: Path) -> None:
    from trackers.eval import evaluate_mot_sequence

    gt_path = as_pedestrian_gt(DATA / "TUD-Campus" / "gt.txt", tmp_path / "gt.txt")
    frames = noisy_detections(read_mot(gt_path), seed=7, miss=0.15, jitter=0.08)
    ours, ref = ByteTrack(), reference_for(TrackConfig())
    lines_ours, lines_ref = [], []
    for f, d in enumerate(frames, start=1):
        lines_ours += mot_lines(f, ours.update(d))
        lines_ref += mot_lines(f, Detections(d.xyxy, d.scores, d.class_ids, tracker_id=reference_ids(ref, d)))
    results = []
    for name, lines in (("ours", lines_ours), ("ref", lines_ref)):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        results.append(evaluate_mot_sequence(gt_path, path, metrics=["CLEAR", "HOTA", "Identity"]))
    a, b = results
    assert a.CLEAR.MOTA == pytest.approx(b.CLEAR.MOTA)
    assert a.Identity.IDF1 == pytest.approx(b.Identity.IDF1)
    assert a.HOTA.HOTA == pytest.approx(b.HOTA.HOTA)
    assert a.CLEAR.MOTA > 0.5  # tracking noisy truth is far from random


def test_trackers_eval_reproduces_motmetrics_published_table(tmp_path: Path) -> None:
    """The evaluator itself: motmetrics' README gives TUD-Campus MOTA 52.6 %, IDF1 55.8 % for test.txt."""
    from trackers.eval import evaluate_mot_sequence

    gt_path = as_pedestrian_gt(DATA / "TUD-Campus" / "gt.txt", tmp_path / "gt.txt")
    r = evaluate_mot_sequence(gt_path, DATA / "TUD-Campus" / "test.txt", metrics=["CLEAR", "Identity"])
    assert r.CLEAR.MOTA == pytest.approx(0.526, abs=0.001)
    assert r.Identity.IDF1 == pytest.approx(0.558, abs=0.001)
