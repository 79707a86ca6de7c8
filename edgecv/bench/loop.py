"""The run loop against bare inference on the same frames: ``edgecv bench --loop``.

"Bare" is what trtexec-style numbers report: the engine on already preprocessed
tensors, nothing else, at its own best settings: with no ``--threads``, ONNX Runtime's
defaults (worker threads spin) and edgecv's (no spinning) are both measured and the
faster counts. "Loop" is ``edgecv run`` with no sinks, with the thread policy ``run``
chooses for a video file (:class:`~edgecv.stream.policy.ParallelismConfig`: two frames in
flight on a multi-core CPU): capture thread (decode), prefetch thread (letterbox,
normalize), inference, decode + NMS. Bare and loop runs alternate so drift affects both;
medians are kept.

Everything runs in this one process (one session per setting); ``scripts/bench_run_vs_bare.py``
measures what a user sees (``edgecv run`` and bare inference as separate processes,
start-up excluded by the loop's own clock). Differences to expect: start-up, page cache
and allocator state are warm here, and on a machine busy with other work a process with
more runnable threads gets a larger share of the cores.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.bench.records import LoopBench
from edgecv.errors import ConfigError


def infer_all(engine: Any, tensors: Sequence[dict[str, np.ndarray]], inflight: int = 1) -> None:
    """Infer every tensor on ``engine`` in order, ``inflight`` calls at once (1: on this thread), the
    way ``edgecv run`` overlaps frames: bare inference for the loop benchmarks and scripts."""
    if inflight <= 1:
        for feeds in tensors:
            engine.infer(feeds)
        return
    with ThreadPoolExecutor(inflight, thread_name_prefix="edgecv-bare") as pool:
        pending: deque[Future[Any]] = deque()
        for feeds in tensors:
            pending.append(pool.submit(engine.infer, feeds))
            if len(pending) >= inflight:
                pending.popleft().result()
        for future in pending:
            future.result()


def bare_fps(model: Any, tensors: list[dict[str, np.ndarray]], inflight: int = 1) -> float:
    start = time.perf_counter()
    infer_all(model.engine, tensors, inflight)
    return len(tensors) / (time.perf_counter() - start)


def _loop_fps(model: Any, source: Path, inflight: int) -> float:
    from edgecv.stream.pipeline import run_sources
    from edgecv.stream.sources import open_source
    from edgecv.stream.streaming import StreamConfig

    with open_source(source) as src:
        return run_sources(model, [src], [[]], StreamConfig(inflight=inflight), annotate=False).sources[0].fps


def loop_benchmark(
    model_path: str | Path, source: str | Path, *, threads: int | None = None, inflight: int | None = None, repeats: int = 3
) -> LoopBench:
    """Median loop FPS and best bare-inference FPS of ``model_path`` on every frame of the video ``source``."""
    import edgecv
    from edgecv.bench.latency import frames_from
    from edgecv.engine.registry import runs_on_cpu
    from edgecv.stream.policy import ParallelismConfig

    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    source = Path(source)
    frames = frames_from(source, limit=100_000)
    on_cpu = runs_on_cpu(Path(model_path))
    plan = ParallelismConfig.choose(cpu_backend=on_cpu, live=False, threads=threads, inflight=inflight)
    # bare: ONNX Runtime's defaults (spinning) and edgecv's, unless a thread count was asked for
    kinds = {"spinning": {"spinning": True}, "no spinning": {}} if on_cpu and threads is None else {"as asked": {"threads": threads}}
    bares: dict[str, Any] = {}
    try:
        for name, options in kinds.items():
            bares[name] = edgecv.load(model_path, **{k: v for k, v in options.items() if v is not None})
        looped = edgecv.load(model_path, **({"threads": plan.threads} if plan.threads is not None else {}))
        try:
            first = next(iter(bares.values()))
            tensors = [first.preprocess(f)[0] for f in frames]
            for model in bares.values():
                bare_fps(model, tensors[:10])  # warm-up
            bare: dict[str, list[float]] = {name: [] for name in bares}
            loop = []
            for i in range(repeats):
                order = list(bares) if i % 2 == 0 else list(reversed(bares))
                for name in order:
                    bare[name].append(bare_fps(bares[name], tensors))
                loop.append(_loop_fps(looped, source, plan.inflight))
        finally:
            looped.close()
    finally:
        for model in bares.values():
            model.close()
    best = max(bare, key=lambda name: statistics.median(bare[name]))
    return LoopBench(
        str(model_path), str(source), len(frames), plan.threads, statistics.median(bare[best]), statistics.median(loop),
        inflight=plan.inflight, bare_kind=best,
    )
