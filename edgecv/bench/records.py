"""What ``edgecv bench`` measured: one record per (model, batch), plus the loop benchmark and the environment.

These plain containers are filled by :mod:`edgecv.bench.latency` and rendered by
:mod:`edgecv.bench.report` (table, JSON, CSV, plot). ``BenchReport.to_dict()`` is
the ``--json`` document; its schema is ``edgecv/bench/bench.schema.json``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from edgecv import __version__
from edgecv.stream.stats import LatencyStats

SCHEMA_VERSION = "edgecv.bench/1"
# Stages timed per iteration; "e2e" is pre + infer + post of one batch, measured as one span.
BENCH_STAGES = ("pre", "infer", "post", "e2e")
PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def _stage_stats() -> dict[str, LatencyStats]:
    return {s: LatencyStats(s) for s in BENCH_STAGES}


@dataclass
class ModelBench:
    """Latency (and optionally accuracy) of one model at one batch size.

    ``stages`` hold milliseconds per batch. ``status`` is ``"ok"`` or ``"error"``;
    a model that failed to load or run keeps its row with ``error`` set, so the
    other models are still reported.
    """

    model: str
    batch: int = 1
    name: str = ""
    backend: str | None = None
    task: str | None = None
    precision: str | None = None
    input_shape: list[int] | None = None
    threads: int | None = None
    status: str = "ok"
    error: str | None = None
    hint: str | None = None  # how to fix the error
    stages: dict[str, LatencyStats] = field(default_factory=_stage_stats)
    speedup: float | None = None  # p50 e2e of the reference row / this row's (same batch size)
    accuracy: dict[str, Any] | None = None  # {"metric": "map" | "miou", "value": float, ...all metrics}
    accuracy_delta: float | None = None  # (this - reference) in points (x100)
    exit_code: int = 0  # of the error (edgecv.errors.EXIT_CODES): the CLI exits with it when no row is ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def throughput_fps(self) -> float | None:
        """Images per second from the mean end-to-end time of a batch."""
        mean = self.stages["e2e"].mean
        return self.batch * 1000.0 / mean if self.ok and self.stages["e2e"].count and mean > 0 else None

    def to_dict(self) -> dict[str, Any]:
        fps = self.throughput_fps
        return {
            "model": self.model,
            "name": self.name,
            "batch": self.batch,
            "backend": self.backend,
            "task": self.task,
            "precision": self.precision,
            "input_shape": self.input_shape,
            "threads": self.threads,
            "status": self.status,
            "error": self.error,
            "hint": self.hint,
            "stages_ms": {k: v.summary(PERCENTILES) for k, v in self.stages.items()},
            "throughput_fps": None if fps is None else round(fps, 3),
            "speedup": None if self.speedup is None else round(self.speedup, 4),
            "accuracy": self.accuracy,
            "accuracy_delta": None if self.accuracy_delta is None else round(self.accuracy_delta, 4),
        }


@dataclass
class LoopBench:
    """The real run loop (capture thread, pre, infer, post; sinks off) against bare inference on the same frames."""

    model: str
    source: str
    frames: int
    threads: int | None
    bare_fps: float
    loop_fps: float
    inflight: int = 1  # frames the loop inferred at once (its threads are per inference)
    bare_kind: str = ""  # which bare setting was fastest ("spinning", "no spinning", "as asked")

    @property
    def ratio(self) -> float:
        return self.loop_fps / self.bare_fps if self.bare_fps > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "frames": self.frames,
            "threads": self.threads,
            "inflight": self.inflight,
            "bare_kind": self.bare_kind,
            "bare_fps": round(self.bare_fps, 3),
            "loop_fps": round(self.loop_fps, 3),
            "ratio": round(self.ratio, 4),
        }


@dataclass
class BenchReport:
    """Everything one ``edgecv bench`` run measured, with the machine it ran on."""

    environment: dict[str, Any]
    config: dict[str, Any]
    results: list[ModelBench] = field(default_factory=list)
    loop: list[LoopBench] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "edgecv_version": __version__,
            "created": self.created,
            "environment": self.environment,
            "config": self.config,
            "results": [r.to_dict() for r in self.results],
            "loop": [r.to_dict() for r in self.loop],
        }
