"""Benchmark: the run loop's FPS against bare inference on the same frames, per ONNX Runtime thread count.

    python scripts/bench_loop.py [MODEL] [--source VIDEO] [--repeats 5] [--threads 1,2]

For one thread count, ``edgecv bench MODEL --loop --source VIDEO --threads N`` gives
the same measurement (:func:`edgecv.bench.loop.loop_benchmark`); this script sweeps
thread counts and, for models with a dynamic input size, also compares bare
inference on the minimally padded letterbox (what ``run`` feeds) with the full
square input.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import onnxruntime as ort

import edgecv
from edgecv import assets
from edgecv.bench.latency import frames_from
from edgecv.bench.loop import bare_fps, loop_benchmark
from edgecv.vision.letterbox import preprocess


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
    print(f"model {model_path.name}, source {source.name}, {platform.machine()} {cores} cores, "
          f"onnxruntime {ort.__version__}, {args.repeats} alternating repeats")
    print(f"{'threads':>7} {'bare FPS':>9} {'loop FPS':>9} {'loop/bare':>9}")
    results = [loop_benchmark(model_path, source, threads=t, repeats=args.repeats) for t in counts]
    for r in results:
        print(f"{r.threads:>7} {r.bare_fps:9.1f} {r.loop_fps:9.1f} {r.ratio:9.3f}")
    best_bare, best_loop = max(r.bare_fps for r in results), max(r.loop_fps for r in results)
    print(f"best loop / best bare: {best_loop:.1f} / {best_bare:.1f} = {best_loop / best_bare:.3f}")
    with edgecv.load(model_path) as model:
        if model.meta.dynamic:
            frames = frames_from(source, limit=100_000)
            minimal = [model.preprocess(f)[0] for f in frames]
            name = model.engine.inputs[0].name
            square = [{name: preprocess(f, model.meta.replace(dynamic=False))[0]} for f in frames]
            runs = [(bare_fps(model, minimal), bare_fps(model, square)) for _ in range(args.repeats)]
            m, q = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            print(f"minimal padding {tuple(minimal[0][name].shape[2:])}: {m:.1f} FPS vs square "
                  f"{tuple(square[0][name].shape[2:])}: {q:.1f} FPS = {m / q:.2f}x (bare inference, default threads)")


if __name__ == "__main__":
    main()
