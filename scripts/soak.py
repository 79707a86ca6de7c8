"""Soak test: N frames through the real run loop with every sink, memory sampled.

    python scripts/soak.py [MODEL] [--frames 10000] [--source VIDEO] [--warmup 1000] [--out DIR] [--json soak.json]

The source (default: the demo video) is looped until N frames went through
``run_pipeline`` with a video sink (mp4v), a JSONL sink and a Python callback, as
``edgecv run --save --jsonl`` does. The process RSS is sampled from /proc about
every 0.25 s; after the warm-up the script reports the RSS growth and its slope
(KB per 1,000 frames, least squares), the memory held by the per-stage latency
statistics (bounded: percentiles keep the newest ``window`` samples), and checks
that the video and the JSONL hold every frame. Exit 1 when an output is
incomplete or the RSS grew more than ``--max-growth-mb`` after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import edgecv
from edgecv import assets
from edgecv.stream import CallbackSink, JsonlSink, VideoSink, open_source, run_pipeline


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def stats_bytes(summary) -> int:  # type: ignore[no-untyped-def]
    """Bytes the per-stage statistics hold (their retained samples, a float64 ring of at most ``window``)."""
    return sum(s.nbytes for s in [*summary.stages.values(), summary.age])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--warmup", type=int, default=1000, help="frames before the RSS baseline is taken")
    parser.add_argument("--out", type=Path, help="folder for the video and JSONL (default: a temp folder, removed)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--no-video", action="store_true", help="leave out the video sink (to tell its memory from the loop's)")
    args = parser.parse_args()
    model_path = args.model or assets.shipped("shapes-det")
    source_path = args.source or assets.demo_video()
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="edgecv-soak-")
    out = args.out or Path(tmp.name)  # type: ignore[union-attr]
    out.mkdir(parents=True, exist_ok=True)

    samples: list[tuple[int, float, float]] = []  # (frames, rss MB, seconds)
    callback_count = 0

    def on_frame(result) -> None:  # type: ignore[no-untyped-def]
        nonlocal callback_count
        callback_count += 1

    t0 = time.perf_counter()
    samples.append((0, rss_mb(), 0.0))
    with edgecv.load(model_path, threads=args.threads) as model:
        source = open_source(source_path, loop=True)
        sinks = [JsonlSink(out / "soak.jsonl"), CallbackSink(on_frame)]
        if not args.no_video:
            sinks.insert(0, VideoSink(out / "soak.mp4", source.fps, source.size))
        summary = run_pipeline(
            model, source, sinks, max_frames=args.frames,
            status=lambda s: samples.append((s.frames, rss_mb(), time.perf_counter() - t0)), status_interval_s=0.25,
        )  # fmt: skip
    samples.append((summary.frames, rss_mb(), time.perf_counter() - t0))

    video_frames = summary.frames
    if not args.no_video:
        cap = cv2.VideoCapture(str(out / "soak.mp4"))
        video_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    with open(out / "soak.jsonl") as f:
        jsonl_lines = sum(1 for _ in f)
    video_mb = 0.0 if args.no_video else (out / "soak.mp4").stat().st_size / 1e6

    after = [(n, r) for n, r, _ in samples if n >= args.warmup]
    base = after[0][1] if after else samples[0][1]
    end = samples[-1][1]
    peak = max(r for _, r, _ in samples)
    slope = 0.0
    if len(after) >= 3:
        n = np.array([a[0] for a in after], float)
        r = np.array([a[1] for a in after], float)
        slope = float(np.polyfit(n, r, 1)[0]) * 1000 * 1000  # KB per 1,000 frames
    figures = {
        "model": model_path.name,
        "source": source_path.name,
        "frames": summary.frames,
        "fps": round(summary.fps, 1),
        "warmup_frames": args.warmup,
        "rss_start_mb": round(samples[0][1], 1),
        "rss_after_warmup_mb": round(base, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(peak, 1),
        "growth_after_warmup_mb": round(end - base, 2),
        "slope_kb_per_1000_frames": round(slope, 1),
        "stats_memory_kb": round(stats_bytes(summary) / 1e3, 1),
        "stats_window": summary.stages["total"].window,
        "stats_memory_bound_kb": round(8 * summary.stages["total"].window * (len(summary.stages) + 1) / 1e3, 1),
        "rss_samples": len(samples),
        "video_frames": video_frames,
        "video_mb": round(video_mb, 1),
        "jsonl_lines": jsonl_lines,
        "callback_frames": callback_count,
        "stages_ms": {k: v.summary() for k, v in summary.stages.items()},
    }
    if tmp is not None:
        tmp.cleanup()
    print(f"soak: {summary.frames} frames of {source_path.name} through {model_path.name} at {summary.fps:.1f} FPS "
          f"with {'' if args.no_video else 'video + '}JSONL + callback sinks ({len(samples)} RSS samples)")  # fmt: skip
    print(f"RSS: start {figures['rss_start_mb']} MB, after {args.warmup} warm-up frames {figures['rss_after_warmup_mb']} MB, "
          f"end {figures['rss_end_mb']} MB, peak {figures['rss_peak_mb']} MB")  # fmt: skip
    print(f"growth after warm-up: {figures['growth_after_warmup_mb']:+.2f} MB "
          f"(slope {figures['slope_kb_per_1000_frames']:+.1f} KB per 1,000 frames)")  # fmt: skip
    print(f"per-stage statistics hold {figures['stats_memory_kb']} KB, at most {figures['stats_memory_bound_kb']} KB however "
          f"long the run (percentiles over the newest {figures['stats_window']} samples per stage; count/mean/min/max exact)")  # fmt: skip
    print(f"outputs: video {video_frames} frames ({figures['video_mb']} MB), JSONL {jsonl_lines} lines, callback {callback_count} calls")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = video_frames == jsonl_lines == callback_count == summary.frames == args.frames
    if not ok:
        print("FAIL: an output does not hold every frame", file=sys.stderr)
    if figures["growth_after_warmup_mb"] > args.max_growth_mb:
        print(f"FAIL: RSS grew {figures['growth_after_warmup_mb']} MB after warm-up (limit {args.max_growth_mb})", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
