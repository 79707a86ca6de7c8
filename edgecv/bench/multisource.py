"""Several sources, batched against per-source sequential inference: ``edgecv bench --sources N``.

Both runs are the real streaming loop (:class:`~edgecv.stream.streaming.Stream`) on
the same frames: ``N`` sources that replay the same decoded frames from memory
(so video decoding does not blur the comparison), sinks off. "Batched" lets the
batcher put one frame of every source into one inference call; "sequential"
caps batches at one frame (``max_batch=1``), so each source's frame gets its own
call, everything else unchanged. The two alternate ``repeats`` times and the
medians are kept, so drift on a shared machine affects both alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import ConfigError
from edgecv.stream.capture import Source
from edgecv.stream.streaming import Stream, StreamConfig


class FrameListSource(Source):
    """A file-like source (every frame, in order) that replays decoded frames from memory."""

    kind = "memory"

    def __init__(self, frames: list[np.ndarray], name: str = "memory") -> None:
        h, w = frames[0].shape[:2]
        super().__init__(name, live=False, fps=30.0, size=(w, h), queue_size=4)
        self._frames = frames
        self._start()

    def _capture(self) -> None:
        for i, image in enumerate(self._frames):
            if not self._emit(i, image, 0.0):
                return


@dataclass
class MultiSourceBench:
    """Total frames per second over ``sources`` sources, batched and one call per frame."""

    model: str
    sources: int
    frames: int
    threads: int | None
    sequential_fps: float
    batched_fps: float
    mean_batch: float

    @property
    def ratio(self) -> float:
        return self.batched_fps / self.sequential_fps if self.sequential_fps > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "sources": self.sources,
            "frames_per_source": self.frames,
            "threads": self.threads,
            "sequential_fps": round(self.sequential_fps, 3),
            "batched_fps": round(self.batched_fps, 3),
            "mean_batch": round(self.mean_batch, 3),
            "ratio": round(self.ratio, 4),
        }


def _loop_fps(model: Any, frames: list[np.ndarray], sources: int, max_batch: int | None) -> tuple[float, float]:
    stream = Stream(model, [FrameListSource(frames, f"memory{i}") for i in range(sources)], StreamConfig(max_batch=max_batch, keep_frames=False))
    start = time.perf_counter()
    with stream:
        n = sum(1 for _ in stream)
    return n / (time.perf_counter() - start), stream.stats.mean_batch


def multisource_benchmark(
    model_path: str | Path, frames: list[np.ndarray], *, sources: int, threads: int | None = None, repeats: int = 3
) -> MultiSourceBench:
    """Median total FPS of ``sources`` sources of ``frames``: batched vs one inference call per frame."""
    import edgecv

    if sources < 2:
        raise ConfigError(f"--sources must be >= 2 to compare batching, got {sources}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if not frames:
        raise ConfigError("no frames to benchmark", hint="pass --source VIDEO or leave it out for synthetic frames")
    with edgecv.load(model_path, threads=threads) as model:
        if not getattr(model, "batchable", False):
            raise ConfigError(
                f"{Path(model_path).name} cannot batch frames (fixed batch dimension or GPU preprocessing)",
                hint="export without --static (a dynamic batch) to batch several cameras",
            )
        _loop_fps(model, frames[:4], sources, None)  # warm-up
        seq, bat, mean_batch = [], [], 0.0
        for _ in range(repeats):
            seq.append(_loop_fps(model, frames, sources, 1)[0])
            fps, mean_batch = _loop_fps(model, frames, sources, None)
            bat.append(fps)
    return MultiSourceBench(str(model_path), sources, len(frames), threads, statistics.median(seq), statistics.median(bat), mean_batch)
