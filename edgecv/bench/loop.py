"""The run loop against bare inference on the same frames: ``edgecv bench --loop``.

"Bare" is what trtexec-style numbers report: the engine on already preprocessed
tensors, nothing else. "Loop" is ``edgecv run`` with no sinks: capture thread
(decode), preprocessing thread (letterbox, normalize), inference, decode + NMS.
Bare and loop runs alternate so drift affects both; medians are kept.

Both run in this one process on one ONNX Runtime session, so they share its threads,
caches and allocations; ``scripts/bench_run_vs_bare.py`` measures what a user sees
(``edgecv run`` and bare inference as separate processes, start-up excluded by the
loop's own clock). Differences to expect: start-up, page cache and allocator state
are warm here; and on a machine busy with other work a process with more runnable
threads (the loop's capture and preprocessing threads) gets a larger share of the
cores, which moves the separate-process ratio more than this one.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.bench.records import LoopBench
from edgecv.errors import ConfigError


def bare_fps(model: Any, tensors: list[dict[str, np.ndarray]]) -> float:
    engine = model.engine
    start = time.perf_counter()
    for feeds in tensors:
        engine.infer(feeds)
    return len(tensors) / (time.perf_counter() - start)


def _loop_fps(model: Any, source: Path) -> float:
    from edgecv.stream.pipeline import run_pipeline
    from edgecv.stream.sources import open_source

    with open_source(source) as src:
        return run_pipeline(model, src, [], annotate=False).fps


def loop_benchmark(model_path: str | Path, source: str | Path, *, threads: int | None = None, repeats: int = 3) -> LoopBench:
    """Median loop FPS and bare-inference FPS of ``model_path`` on every frame of the video ``source``."""
    import edgecv
    from edgecv.bench.latency import frames_from

    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    source = Path(source)
    frames = frames_from(source, limit=100_000)
    with edgecv.load(model_path, threads=threads) as model:
        tensors = [model.preprocess(f)[0] for f in frames]
        bare_fps(model, tensors[:10])  # warm-up
        bare, loop = [], []
        for _ in range(repeats):
            bare.append(bare_fps(model, tensors))
            loop.append(_loop_fps(model, source))
    return LoopBench(str(model_path), str(source), len(frames), threads, statistics.median(bare), statistics.median(loop))
