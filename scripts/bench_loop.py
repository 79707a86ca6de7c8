"""Benchmark: the run loop's FPS against bare ONNX Runtime inference on the same frames.

    python scripts/bench_loop.py [MODEL] [--source VIDEO] [--repeats 5] [--threads 1,2]

"Bare" is what trtexec-style numbers report: ``session.run`` on already
preprocessed tensors, nothing else. "Loop" is ``edgecv run`` with no sinks:
capture thread (decode), preprocessing thread (letterbox, normalize), inference,
YOLO decode + NMS. For each ONNX Runtime thread count, bare and loop runs
alternate so machine drift affects both; medians and their ratio are printed.
For models with a dynamic input size it also compares bare inference on the
minimally padded letterbox (what ``run`` feeds) with the full square input.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import edgecv
from edgecv import assets
from edgecv.stream.pipeline import run_pipeline
from edgecv.stream.sources import open_source


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def bare_fps(model: edgecv.api.Model, tensors: list[np.ndarray]) -> float:
    session, name = model.engine.session, model.engine.inputs[0].name
    start = time.perf_counter()
    for x in tensors:
        session.run(None, {name: x})
    return len(tensors) / (time.perf_counter() - start)


def loop_fps(model: edgecv.api.Model, source: Path) -> float:
    with open_source(source) as src:
        return run_pipeline(model, src, [], annotate=False).fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default=None, help="comma-separated ONNX Runtime intra-op thread counts (default: 1 and all cores)")
    args = parser.parse_args()
    model_path = args.model or assets.shipped("shapes-det")
    source = args.source or assets.demo_video()
    cores = os.cpu_count() or 1
    counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    frames = read_frames(source)
    print(f"model {model_path.name}, source {source.name} ({len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}), "
          f"{platform.machine()} {cores} cores, onnxruntime {ort.__version__}, {args.repeats} alternating repeats")
    print(f"{'threads':>7} {'bare FPS':>9} {'loop FPS':>9} {'loop/bare':>9}")
    best_bare = best_loop = 0.0
    for threads in counts:
        model = edgecv.load(model_path, threads=threads)
        tensors = [model.preprocess(f)[0][model.engine.inputs[0].name] for f in frames]
        bare_fps(model, tensors[:20])  # warm-up
        bare, loop = [], []
        for _ in range(args.repeats):
            bare.append(bare_fps(model, tensors))
            loop.append(loop_fps(model, source))
        b, lp = statistics.median(bare), statistics.median(loop)
        best_bare, best_loop = max(best_bare, b), max(best_loop, lp)
        print(f"{threads:>7} {b:9.1f} {lp:9.1f} {lp / b:9.3f}")
        model.close()
    print(f"best loop / best bare: {best_loop:.1f} / {best_bare:.1f} = {best_loop / best_bare:.3f}")
    model = edgecv.load(model_path)
    if model.meta.dynamic:
        from edgecv.vision.letterbox import preprocess

        square = [preprocess(f, model.meta.replace(dynamic=False))[0] for f in frames]
        minimal = [model.preprocess(f)[0][model.engine.inputs[0].name] for f in frames]
        runs = [(bare_fps(model, minimal), bare_fps(model, square)) for _ in range(args.repeats)]
        m, q = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"minimal padding {tuple(minimal[0].shape[2:])}: {m:.1f} FPS vs square {tuple(square[0].shape[2:])}: "
              f"{q:.1f} FPS = {m / q:.2f}x (bare inference, default threads)")
    model.close()


if __name__ == "__main__":
    main()
