"""Benchmark the TensorRT path's options against each other, in one run, on one engine.

    python scripts/bench_gpu_path.py MODEL.engine [--source VIDEO] [--iterations 300] [--repeats 3]

Needs a GPU, TensorRT and numba (``pip install 'edgecv[tensorrt]'``; on a Jetson, JetPack's
TensorRT). Variants, timed alternately so clocks and thermals hit each alike:

- ``cpu-pre``: OpenCV letterbox on the CPU, uploaded by the engine;
- ``gpu-pre``: the CUDA kernel on the engine's stream (what ``edgecv run`` does);
- ``gpu-pre+graph``: the same, with the network replayed as a CUDA graph (``--cuda-graph``).

For each: median ``enqueue`` (the network's GPU time, CUDA events), ``pre`` and ``infer``
(the kernel's GPU time counted in pre, see ``Model.stage_ms``) and end to end
(pre + infer + post), then the ratios to ``cpu-pre``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import edgecv
from edgecv.bench.latency import frames_from, synthetic_frames

VARIANTS = {"cpu-pre": (False, False), "gpu-pre": (True, False), "gpu-pre+graph": (True, True)}


def run_variant(model: Any, frames: list, iterations: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"enqueue": [], "pre": [], "infer": [], "e2e": []}
    for k in range(iterations):
        frame = frames[k % len(frames)]
        t0 = time.perf_counter()
        feeds, transform = model.preprocess(frame)
        t1 = time.perf_counter()
        outputs = model.infer(feeds)
        t2 = time.perf_counter()
        model.postprocess(outputs, transform)
        t3 = time.perf_counter()
        pre, infer = model.stage_ms((t1 - t0) * 1e3, (t2 - t1) * 1e3)
        times["enqueue"].append(model.engine.last_gpu_ms)
        times["pre"].append(pre)
        times["infer"].append(infer)
        times["e2e"].append((t3 - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", type=Path)
    parser.add_argument("--source", help="video or image folder (default: synthetic 640x480 scenes)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.engine.suffix not in (".engine", ".plan"):
        raise SystemExit(f"{args.engine}: pass a TensorRT engine (edgecv build-engine {args.engine} writes one)")
    frames = frames_from(args.source) if args.source else synthetic_frames(32)
    models = {}
    for name, (gpu_pre, graph) in VARIANTS.items():
        model = edgecv.load(args.engine, cuda_graph=graph)
        if gpu_pre and not model.gpu_preprocess:
            raise SystemExit("numba with a CUDA GPU is needed for the GPU preprocessing variants (pip install numba)")
        model.gpu_preprocess = gpu_pre
        run_variant(model, frames, 30)  # warm-up (and the CUDA graph capture)
        models[name] = model
    results: dict[str, dict[str, list[float]]] = {name: {} for name in VARIANTS}
    for _ in range(args.repeats):  # alternate, so every variant sees the same conditions
        for name, model in models.items():
            for stage, values in run_variant(model, frames, args.iterations).items():
                results[name].setdefault(stage, []).extend(values)
    engine = models["cpu-pre"].engine
    print(f"{args.engine.name}: {engine.manifest.get('gpu', '?')}, TensorRT {engine.manifest.get('tensorrt', '?')}, "
          f"{engine.manifest.get('precision', '?')}, frames {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"{args.repeats} x {args.iterations} iterations")  # fmt: skip
    print(f"{'variant':<15}{'enqueue ms':>12}{'pre ms':>10}{'infer ms':>10}{'e2e ms':>10}{'e2e FPS':>10}{'vs cpu-pre':>12}")
    base = statistics.median(results["cpu-pre"]["e2e"])
    for name, stages in results.items():
        med = {stage: statistics.median(values) for stage, values in stages.items()}
        print(f"{name:<15}{med['enqueue']:>12.3f}{med['pre']:>10.3f}{med['infer']:>10.3f}{med['e2e']:>10.3f}"
              f"{1000 / med['e2e']:>10.1f}{base / med['e2e']:>11.2f}x")  # fmt: skip
    for model in models.values():
        model.close()


if __name__ == "__main__":
    main()
