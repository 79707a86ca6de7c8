"""Tracking: edgecv's ByteTrack vs Roboflow's trackers ByteTrack on MOT ground truth, and the step cost.

Run in the tracking venv (it needs `trackers` and `motmetrics`' data files):
    python3 -m venv .venv-track && .venv-track/bin/pip install trackers motmetrics && .venv-track/bin/pip install -e '.[test]'
    .venv-track/bin/python scripts/bench_track.py

Detections are simulated from the ground truth of motmetrics' TUD-Campus and
TUD-Stadtmitte (misses, jittered boxes, scores, false positives; three noise
levels, seeds 0-2), fed to both trackers, scored with `trackers.eval` (MOTA, IDF1,
HOTA; mean over the seeds). "agree" is the share of detections given the same
track ID (or the same "untracked") by both trackers. The step cost is timed on
crossing objects, alternating the two trackers in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecv.results import Detections  # noqa: E402
from edgecv.track import ByteTrack, TrackConfig  # noqa: E402
from edgecv.track.mot import as_pedestrian_gt, mot_lines, noisy_detections, read_mot  # noqa: E402

NOISE = {  # name: noisy_detections keyword arguments
    "light": {"miss": 0.05, "jitter": 0.03, "false_positives": 0.2},
    "medium": {"miss": 0.1, "jitter": 0.05, "false_positives": 0.5},
    "heavy": {"miss": 0.2, "jitter": 0.08, "false_positives": 1.5, "score_mean": 0.6, "score_std": 0.2},
}


class Reference:
    """Roboflow's trackers ByteTrack, returning tracker IDs in input order."""

    def __init__(self, cfg: TrackConfig) -> None:
        import supervision as sv
        from trackers import ByteTrackTracker

        self.sv = sv
        self.tracker = ByteTrackTracker(
            lost_track_buffer=cfg.track_buffer, frame_rate=cfg.frame_rate, track_activation_threshold=cfg.new_track_thresh,
            minimum_consecutive_frames=cfg.min_hits, minimum_iou_threshold=cfg.match_iou, high_conf_det_threshold=cfg.high_thresh,
        )

    def update(self, d: Detections) -> Detections:
        sd = self.sv.Detections(xyxy=d.xyxy.copy(), confidence=d.scores.copy(), class_id=d.class_ids.copy(), data={"row": np.arange(len(d))})
        out = self.tracker.update(sd)
        ids = np.full(len(d), -1, np.int64)
        if len(d):
            ids[out.data["row"]] = out.tracker_id
        return Detections(d.xyxy, d.scores, d.class_ids, tracker_id=ids)


def mot_table(data: Path, tmp: Path) -> list[str]:
    from trackers.eval import evaluate_mot_sequence

    rows = ["| sequence | detections | tracker | MOTA % | IDF1 % | HOTA % | ID switches | agree % |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for seq in ("TUD-Campus", "TUD-Stadtmitte"):
        gt_path = as_pedestrian_gt(data / seq / "gt.txt", tmp / f"{seq}-gt.txt")
        gt = read_mot(gt_path)
        for noise, kw in NOISE.items():
            scores: dict[str, list[tuple[float, float, float, int]]] = {"edgecv": [], "trackers": []}
            same = total = 0
            for seed in range(3):
                frames = noisy_detections(gt, seed=seed, **kw)
                runs = {"edgecv": ByteTrack(), "trackers": Reference(TrackConfig())}
                lines: dict[str, list[str]] = {k: [] for k in runs}
                for f, d in enumerate(frames, start=1):
                    outs = {k: t.update(d) for k, t in runs.items()}
                    for k, o in outs.items():
                        lines[k] += mot_lines(f, o)
                    same += int((outs["edgecv"].tracker_id == outs["trackers"].tracker_id).sum())
                    total += len(d)
                for k in runs:
                    path = tmp / f"{seq}-{noise}-{seed}-{k}.txt"
                    path.write_text("\n".join(lines[k]) + "\n")
                    r = evaluate_mot_sequence(gt_path, path, metrics=["CLEAR", "HOTA", "Identity"])
                    scores[k].append((r.CLEAR.MOTA, r.Identity.IDF1, r.HOTA.HOTA, r.CLEAR.IDSW))
            for k, vals in scores.items():
                m = np.mean(np.array(vals, np.float64), axis=0)
                rows.append(
                    f"| {seq} | {noise} | {k} | {100 * m[0]:.1f} | {100 * m[1]:.1f} | {100 * m[2]:.1f} | {m[3]:.1f} | {100 * same / total:.1f} |"
                )
    return rows


def crossing(n_objects: int, n_frames: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1500, (n_objects, 2))
    vel = rng.normal(0, 3, (n_objects, 2))
    size = rng.uniform(20, 90, (n_objects, 2))
    out = []
    for t in range(n_frames):
        xy = start + vel * t + rng.normal(0, 1.0, (n_objects, 2))
        boxes = np.concatenate([xy, xy + size], axis=1).astype(np.float32)
        scores = np.clip(rng.normal(0.7, 0.2, n_objects), 0.05, 1.0).astype(np.float32)
        out.append(Detections(boxes, scores, np.zeros(n_objects, np.int32)))
    return out


def step_cost(counts: tuple[int, ...], n_frames: int, with_reference: bool) -> list[str]:
    rows = ["| objects | edgecv ms/step | trackers ms/step | trackers / edgecv |", "|---:|---:|---:|---:|"]
    for n in counts:
        frames = crossing(n, n_frames)
        times: dict[str, list[float]] = {"edgecv": [], "trackers": []}
        trackers_ = {"edgecv": ByteTrack(), **({"trackers": Reference(TrackConfig())} if with_reference else {})}
        for d in frames:  # alternate A/B frame by frame, so both see the same machine load
            for k, t in trackers_.items():
                t0 = time.perf_counter()
                t.update(d)
                times[k].append((time.perf_counter() - t0) * 1e3)
        a = float(np.median(times["edgecv"][10:]))
        if with_reference:
            b = float(np.median(times["trackers"][10:]))
            rows.append(f"| {n} | {a:.3f} | {b:.3f} | {b / a:.1f}x |")
        else:
            rows.append(f"| {n} | {a:.3f} | - | - |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per step-cost scene")
    ap.add_argument("--skip-mot", action="store_true", help="only the step cost")
    args = ap.parse_args()
    try:
        import motmetrics
        import trackers  # noqa: F401

        have_ref = True
    except ImportError:
        have_ref = False
        print("trackers/motmetrics not importable: step cost of edgecv only (run in .venv-track for the comparison)")
    if have_ref and not args.skip_mot:
        with tempfile.TemporaryDirectory() as tmp:
            print("\n".join(mot_table(Path(motmetrics.__file__).parent / "data", Path(tmp))))
        print()
    print(f"step cost, median over {args.frames - 10} frames (objects crossing, scores N(0.7, 0.2)):")
    print("\n".join(step_cost((10, 20, 50), args.frames, have_ref)))


if __name__ == "__main__":
    main()
