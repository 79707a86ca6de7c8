"""Benchmark the TensorRT path's options against each other, in one run, on one engine.

    python scripts/bench_gpu_path.py MODEL.engine [--source VIDEO] [--iterations 300] [--repeats 3]

Needs a GPU, TensorRT and numba (``pip install 'edgecv[tensorrt]'``; on a Jetson, JetPack's
TensorRT). Variants, timed alternately so clocks and thermals hit each alike:

- ``cpu-pre``: OpenCV letterbox on the CPU, uploaded by the engine;
- ``gpu-pre``: the CUDA kernel on the engine's stream (what ``edgecv run`` does);
- ``gpu-pre+graph``: the same, with the network replayed as a CUDA graph (``--cuda-graph``).

Each is measured by ``edgecv bench``'s own loop (:func:`edgecv.bench.latency.benchmark`):
median ``enqueue`` (the network's GPU time, CUDA events), ``pre`` and ``infer`` (the
kernel's GPU time counted in pre, see ``Model.stage_ms``) and end to end (pre + infer +
post), then the ratios to ``cpu-pre``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from edgecv.api import _has_numba_cuda
from edgecv.bench.latency import BenchConfig, benchmark, frames_from, synthetic_frames

VARIANTS = {"cpu-pre": (False, False), "gpu-pre": (True, False), "gpu-pre+graph": (True, True)}
STAGES = {"enqueue": "gpu", "pre": "pre", "infer": "infer", "e2e": "e2e"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", type=Path)
    parser.add_argument("--source", help="video or image folder (default: synthetic 640x480 scenes)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.engine.suffix not in (".engine", ".plan"):
        raise SystemExit(f"{args.engine}: pass a TensorRT engine (edgecv build-engine {args.engine} writes one)")
    if not _has_numba_cuda():
        raise SystemExit("numba with a CUDA GPU is needed for the GPU preprocessing variants (pip install numba)")
    frames = frames_from(args.source) if args.source else synthetic_frames(32)
    p50s: dict[str, dict[str, list[float]]] = {name: {stage: [] for stage in STAGES} for name in VARIANTS}
    record = None
    for _ in range(args.repeats):  # alternate, so every variant sees the same conditions
        for name, (gpu_pre, graph) in VARIANTS.items():
            cfg = BenchConfig(warmup=30, iterations=args.iterations, cuda_graph=graph, gpu_preprocess=gpu_pre)
            record = benchmark([str(args.engine)], cfg, frames).results[0]
            if not record.ok:
                raise SystemExit(f"{name}: {record.error}")
            for stage, key in STAGES.items():
                p50s[name][stage].append(record.stages[key].p50)
    print(f"{args.engine.name}: {record.precision}, frames {frames[0].shape[1]}x{frames[0].shape[0]}, {args.repeats} x {args.iterations} iterations")
    print(f"{'variant':<15}{'enqueue ms':>12}{'pre ms':>10}{'infer ms':>10}{'e2e ms':>10}{'e2e FPS':>10}{'vs cpu-pre':>12}")
    base = statistics.median(p50s["cpu-pre"]["e2e"])
    for name, stages in p50s.items():
        med = {stage: statistics.median(values) for stage, values in stages.items()}
        print(f"{name:<15}{med['enqueue']:>12.3f}{med['pre']:>10.3f}{med['infer']:>10.3f}{med['e2e']:>10.3f}"
              f"{1000 / med['e2e']:>10.1f}{base / med['e2e']:>11.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
