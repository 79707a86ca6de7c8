"""Benchmark: the run loop's FPS against bare ONNX Runtime inference on the same frames.

    python scripts/bench_loop.py [MODEL] [--source VIDEO] [--repeats 3] [--threads N]

"Bare" is what trtexec-style numbers report: ``session.run`` on already preprocessed
tensors, nothing else. "Loop" is ``edgecv run`` with no sinks: capture thread, decode,
letterbox, inference, YOLO decode + NMS. Runs alternate (bare, loop, bare, loop, ...)
so machine drift affects both; the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import cv2
import onnxruntime as ort

import edgecv
from edgecv import assets
from edgecv.stream.pipeline import run_pipeline
from edgecv.stream.sources import open_source


def read_frames(path: Path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def bare_fps(model, tensors: list) -> float:
    engine = model.engine
    name = engine.inputs[0].name
    start = time.perf_counter()
    for x in tensors:
        engine.session.run(None, {name: x})
    return len(tensors) / (time.perf_counter() - start)


def loop_fps(model, source: Path) -> float:
    with open_source(source) as src:
        summary = run_pipeline(model, src, [], annotate=False)
    return summary.fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    model_path = args.model or assets.shipped("shapes-det")
    source = args.source or assets.demo_video()
    model = edgecv.load(model_path, threads=args.threads)
    frames = read_frames(source)
    tensors = [model.preprocess(f)[0][model.engine.inputs[0].name] for f in frames]
    bare_fps(model, tensors[:10])  # warm-up
    bare, loop = [], []
    for _ in range(args.repeats):
        bare.append(bare_fps(model, tensors))
        loop.append(loop_fps(model, source))
    b, l = statistics.median(bare), statistics.median(loop)
    print(f"model   {model_path.name} input {tensors[0].shape} on {platform.processor() or platform.machine()}, "
          f"onnxruntime {ort.__version__}, {args.threads or 'default'} threads")
    print(f"source  {source.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}")
    print(f"bare inference  {b:7.1f} FPS   (runs: {', '.join(f'{v:.1f}' for v in bare)})")
    print(f"run loop        {l:7.1f} FPS   (runs: {', '.join(f'{v:.1f}' for v in loop)})")
    print(f"loop / bare     {l / b:7.3f}")


if __name__ == "__main__":
    main()
