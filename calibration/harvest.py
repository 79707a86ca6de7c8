#!/usr/bin/env python3
"""Harvest a calibration set and a held-out set from the robot's own camera, a video, or an image folder.

    python calibration/harvest.py run1.mp4 run2.mp4 --out calib/ --every 15 --num 600
    python calibration/harvest.py 0 --out calib/ --seconds 300 --every 10           # camera 0 (or a GStreamer/RTSP URL)
    python calibration/harvest.py photos/ --out calib/ --num 600

Writes ``OUT/calibration/*.jpg`` and ``OUT/holdout/*.jpg`` and ``OUT/manifest.json`` (where
each frame came from, the split, what was skipped). Then:

    edgecv calibrate model.onnx OUT/calibration --val OUT/holdout --max-drop 1

How frames are chosen (see calibration/README.md for why):

- every ``--every``-th frame of a video or camera (consecutive frames are near copies);
- near-duplicates dropped: a frame whose 32x32 grey thumbnail differs from the last kept
  one by less than ``--min-change`` (mean absolute difference, 0-255) is skipped, so a
  robot standing still does not fill the set with one view;
- the held-out split is by *blocks of consecutive frames* (``--block`` frames each, whole
  blocks assigned at random with ``--seed``), never frame by frame: a held-out frame one
  step away from a calibration frame would make the held-out score look better than the
  robot will see. Separate recordings (several inputs) are kept apart the same way.

Only OpenCV and numpy are needed (it runs on the robot, without edgecv installed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def frames_from(source: str, *, every: int, seconds: float | None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, BGR frame)`` from an image folder, a video file, or a camera index / URL."""
    import cv2

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: no images (jpg, png, ...) in {path}")
        for file in files:
            frame = cv2.imread(str(file))
            if frame is None:
                print(f"skipped unreadable image {file}", file=sys.stderr)
                continue
            yield str(file.relative_to(path)), frame
        return
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        raise SystemExit(f"error: cannot open {source!r} (a video file, a camera index such as 0, or a stream URL)")
    live = source.isdigit() or "://" in source
    start = time.monotonic()
    index = 0
    try:
        while seconds is None or time.monotonic() - start < seconds:
            if not capture.grab():
                if live:
                    raise SystemExit(f"error: {source!r} stopped delivering frames after {index}")
                break
            if index % every == 0:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield f"{Path(source).name if not live else 'camera' + source}#{index}", frame
            index += 1
    finally:
        capture.release()


def thumbnail(frame: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def split_blocks(count: int, *, holdout: float, block: int, seed: int, groups: list[int]) -> list[bool]:
    """``is_holdout`` per frame: whole blocks of consecutive frames (never crossing a recording) go to held-out."""
    blocks: list[list[int]] = []
    for i in range(count):
        if not blocks or len(blocks[-1]) >= block or groups[blocks[-1][-1]] != groups[i]:
            blocks.append([])
        blocks[-1].append(i)
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    target = holdout * count if holdout < 1 else holdout
    chosen: set[int] = set()
    taken = 0
    for b in order:
        if taken >= target:
            break
        chosen.add(b)
        taken += len(blocks[b])
    flags = [False] * count
    for b in chosen:
        for i in blocks[b]:
            flags[i] = True
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="video files, image folders, camera indices (0) or stream URLs")
    parser.add_argument("--out", type=Path, required=True, help="output folder (calibration/, holdout/, manifest.json)")
    parser.add_argument("--every", type=int, default=10, help="take every k-th frame of a video or camera (default 10)")
    parser.add_argument("--num", type=int, default=600, help="frames to keep in all, calibration + held-out (default 600)")
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share (< 1) or count (>= 1) (default 0.2)")
    parser.add_argument("--block", type=int, default=10, help="kept frames per block for the held-out split (default 10)")
    parser.add_argument("--min-change", type=float, default=2.0, help="skip frames this similar to the last kept one (0-255; 0 keeps all)")
    parser.add_argument("--seconds", type=float, default=None, help="stop a camera/stream after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    args = parser.parse_args(argv)
    if args.every < 1 or args.num < 2 or args.block < 1 or args.holdout <= 0 or args.min_change < 0:
        parser.error("--every, --block >= 1; --num >= 2; --holdout > 0; --min-change >= 0")
    import cv2

    kept: list[tuple[str, bytes, int]] = []  # JPEG-encoded: a long recording must not fill the memory
    similar = 0
    for group, source in enumerate(args.sources):
        last: np.ndarray | None = None
        for name, frame in frames_from(source, every=args.every, seconds=args.seconds):
            small = thumbnail(frame)
            if last is not None and args.min_change > 0 and float(np.abs(small - last).mean()) < args.min_change:
                similar += 1
                continue
            last = small
            ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            if not ok:
                raise SystemExit(f"error: cannot encode frame {name}")
            kept.append((name, jpeg.tobytes(), group))
            if len(kept) >= 4 * args.num:  # thin evenly; the stride over the recording doubles
                kept = kept[::2]
    if len(kept) > args.num:  # spread the choice over everything seen, in order
        pick = np.linspace(0, len(kept) - 1, args.num).round().astype(int)
        kept = [kept[i] for i in sorted(set(pick.tolist()))]
    if len(kept) < 2:
        raise SystemExit(f"error: only {len(kept)} distinct frames; lower --every or --min-change, or record longer")
    flags = split_blocks(len(kept), holdout=args.holdout, block=args.block, seed=args.seed, groups=[g for _, _, g in kept])
    if all(flags) or not any(flags):
        flags = [i >= len(kept) - max(1, int(len(kept) * 0.2)) for i in range(len(kept))]
    rows = []
    for folder in ("calibration", "holdout"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    for i, ((name, frame, group), held) in enumerate(zip(kept, flags)):
        folder = "holdout" if held else "calibration"
        file = args.out / folder / f"{i:05d}.jpg"
        tmp = file.with_suffix(".tmp")
        tmp.write_bytes(frame)
        tmp.replace(file)  # a partly written frame never looks like an image
        rows.append({"file": f"{folder}/{file.name}", "source": name, "recording": group})
    counts = {"calibration": flags.count(False), "holdout": flags.count(True)}
    manifest = {"sources": args.sources, "every": args.every, "min_change": args.min_change, "block": args.block, "seed": args.seed,
                "skipped_similar": similar, **counts, "frames": rows}  # fmt: skip
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{counts['calibration']} calibration + {counts['holdout']} held-out frames in {args.out} ({similar} near-duplicates skipped)")
    if counts["holdout"] < 100:
        print(f"note: {counts['holdout']} held-out frames are few for a 1-point claim; edgecv calibrate says how many more it needs", file=sys.stderr)
    print(f"next: edgecv calibrate MODEL.onnx {args.out / 'calibration'} --val {args.out / 'holdout'} --max-drop 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
