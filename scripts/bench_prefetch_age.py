"""Frame age and throughput of the run loop on a live source: just-in-time vs eager prefetch.

A realtime (paced, newest-frame) video feeds a model slower than the camera. The
prefetch worker either reads the source's newest frame just before the loop will
want it (``StreamConfig(prefetch="just-in-time")``, the default) or as soon as the
slot is free (``"eager"``: the frame then waits a whole inference period). The two
alternate in one process; medians are printed.

    .venv/bin/python scripts/bench_prefetch_age.py [--model models/shapes-det.onnx] [--fps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/shapes-det.onnx")
    ap.add_argument("--video", default="models/demo.mp4")
    ap.add_argument("--fps", type=float, default=60.0, help="pace of the live source")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--gpu-ms", type=float, default=0.0,
        help="add this many ms of sleep to each inference: a GPU engine, where the CPU is free while the network runs",
    )
    args = ap.parse_args()

    import edgecv
    from edgecv.stream import StreamConfig, run_sources

    with tempfile.TemporaryDirectory() as tmp:
        live = Path(tmp) / "live.avi"
        cap = cv2.VideoCapture(args.video)
        writer = None
        for _ in range(args.frames):
            ok, img = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = cap.read()
            if writer is None:
                writer = cv2.VideoWriter(str(live), cv2.VideoWriter_fourcc(*"MJPG"), args.fps, (img.shape[1], img.shape[0]))
            writer.write(img)
        cap.release()
        assert writer is not None
        writer.release()

        modes = ("just-in-time", "eager")
        rows: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}  # (age p50, fps)
        with edgecv.load(args.model) as model:
            if args.gpu_ms > 0:
                import time

                infer = model.infer

                def slow_infer(feeds, _infer=infer):  # type: ignore[no-untyped-def]
                    time.sleep(args.gpu_ms / 1e3)
                    return _infer(feeds)

                model.infer = slow_infer  # type: ignore[method-assign]
            for _ in range(args.repeats):
                for name in modes:
                    cfg = StreamConfig(realtime=True, prefetch=name)
                    (s,) = run_sources(model, [str(live)], [], cfg, annotate=False).sources
                    rows[name].append((s.age_p50 or 0.0, s.fps))
    extra = f", +{args.gpu_ms:g} ms simulated GPU time per inference" if args.gpu_ms else ""
    print(f"{args.model} on a {args.fps:g} fps live source, {args.frames} frames{extra}, medians of {args.repeats} (alternating)")
    for name, vals in rows.items():
        age = statistics.median(v[0] for v in vals)
        fps = statistics.median(v[1] for v in vals)
        print(f"  prefetch {name:12s} frame age p50 {age:6.1f} ms   {fps:6.1f} FPS")
    a, b = (statistics.median(v[0] for v in rows[m]) for m in modes)
    print(f"  age ratio (eager / just-in-time): {b / a:.2f}" if a > 0 else "")
    sys.exit(0)


if __name__ == "__main__":
    main()
