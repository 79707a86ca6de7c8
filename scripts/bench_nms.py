"""edgecv's NMS vs torchvision's ``batched_nms``: same kept boxes, time ratio, single thread.

Run in a venv with torchvision (CI's ``.venv-tv``):

    .venv-tv/bin/python scripts/bench_nms.py            # the full grid
    .venv-tv/bin/python scripts/bench_nms.py --quick    # fewer repeats
    .venv-tv/bin/python scripts/bench_nms.py --sizes 30,100,200,300   # other candidate counts

Grid: 100 / 1,000 / 8,400 candidates x 1 / 80 classes x two scenes, IoU 0.45,
distinct scores (with ties two correct NMS may keep different, equivalent boxes):

- ``yolo``: what a YOLO head gives at a low score threshold on a 640x640 input:
  objects each surrounded by a cloud of jittered boxes (most of them suppressed),
  plus low-score boxes scattered over the image; classes per object, with noise.
- ``scattered``: boxes of 8-120 px uniformly over the image, random classes (many survive:
  the worst case for greedy NMS, whose cost grows with kept x candidates).

Both sides are timed alternately in one process (A/B/A/B..., median of each), so the
ratio is robust to a busy machine; the kept sets are compared before timing and any
mismatch is printed and makes the script exit 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def scene(kind: str, n: int, n_classes: int, seed: int, size: float = 640.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "yolo":
        n_obj = max(1, n // 60)
        centers = rng.uniform(0.1 * size, 0.9 * size, (n_obj, 2))
        dims = rng.uniform(16, 200, (n_obj, 2))
        obj_cls = rng.integers(0, n_classes, n_obj)
        n_cloud = int(n * 0.7)
        owner = rng.integers(0, n_obj, n_cloud)
        c = centers[owner] + rng.normal(0, 0.12, (n_cloud, 2)) * dims[owner]
        wh = dims[owner] * rng.uniform(0.7, 1.3, (n_cloud, 2))
        cls_cloud = np.where(rng.random(n_cloud) < 0.15, rng.integers(0, n_classes, n_cloud), obj_cls[owner])
        n_bg = n - n_cloud
        cb = rng.uniform(0, size, (n_bg, 2))
        whb = rng.uniform(8, 120, (n_bg, 2))
        c, wh = np.concatenate([c, cb]), np.concatenate([wh, whb])
        cls = np.concatenate([cls_cloud, rng.integers(0, n_classes, n_bg)])
        scores = np.concatenate([rng.uniform(0.2, 0.95, n_cloud), rng.uniform(0.001, 0.2, n_bg)])
    elif kind == "scattered":
        c = rng.uniform(0, size, (n, 2))
        wh = rng.uniform(8, 120, (n, 2))
        cls = rng.integers(0, n_classes, n)
        scores = rng.uniform(0.001, 1.0, n)
    else:
        raise ValueError(kind)
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1).clip(0, size).astype(np.float32)
    scores = scores.astype(np.float32)
    # distinct scores: nudge duplicates apart
    order = np.argsort(scores, kind="stable")
    scores[order] = np.maximum.accumulate(scores[order] + np.arange(n, dtype=np.float32) * np.float32(1e-7))
    assert len(np.unique(scores)) == n
    return boxes, scores, cls.astype(np.int64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--iou", type=float, default=0.45)
    parser.add_argument(
        "--sizes", default="100,1000,8400", help="candidate counts, comma-separated (default: %(default)s)"
    )
    args = parser.parse_args()

    import torch
    from torchvision.ops import batched_nms

    from edgecv.vision.nms import nms

    torch.set_num_threads(1)
    iou = args.iou
    try:
        sizes = [int(v) for v in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes comma-separated integers, got {args.sizes!r}")
    if any(v < 1 for v in sizes):
        parser.error(f"--sizes must be >= 1, got {args.sizes!r}")
    print(f"torch {torch.__version__}, numpy {np.__version__}, 1 thread, IoU {iou}; times are medians (ms)")
    print(f"{'scene':<10} {'cands':>6} {'cls':>4} {'kept':>6} {'edgecv ms':>10} {'tv ms':>9} {'edgecv/tv':>10}")
    bad = 0
    for kind in ("yolo", "scattered"):
        for n in sizes:
            for nc in (1, 80):
                boxes, scores, cls = scene(kind, n, nc, seed=n + nc)
                tb, ts, tc = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(cls)
                want = batched_nms(tb, ts, tc, iou).numpy()
                got = nms(boxes, scores, cls, iou)
                if got.tolist() != want.tolist():
                    bad += 1
                    print(f"MISMATCH {kind} n={n} nc={nc}: edgecv kept {len(got)}, torchvision {len(want)}")
                # time with enough calls per sample to be above timer noise
                t0 = time.perf_counter()
                batched_nms(tb, ts, tc, iou)
                once = time.perf_counter() - t0
                inner = max(1, int(0.02 / max(once, 1e-6)))
                reps = 5 if args.quick else 15
                a_times, b_times = [], []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        nms(boxes, scores, cls, iou)
                    a_times.append((time.perf_counter() - t0) / inner)
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        batched_nms(tb, ts, tc, iou)
                    b_times.append((time.perf_counter() - t0) / inner)
                a, b = statistics.median(a_times) * 1e3, statistics.median(b_times) * 1e3
                print(f"{kind:<10} {n:>6} {nc:>4} {len(want):>6} {a:>10.3f} {b:>9.3f} {a / b:>10.2f}", flush=True)
    if bad:
        print(f"{bad} kept-set mismatches")
        return 1
    print("kept sets identical to torchvision in every case")
    return 0


if __name__ == "__main__":
    sys.exit(main())
