"""What a run did, per source: :class:`RunSummary` (counts, wall time, per-stage latency, frame age)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgecv.stream.stats import LatencyStats

STAGES = ("capture", "pre", "infer", "post", "sink", "total")


def _stage_stats() -> dict[str, LatencyStats]:
    return {s: LatencyStats(s) for s in STAGES}


@dataclass
class RunSummary:
    """What a run did: counts, wall time, per-stage latency, frame age.

    Passed (the same object, updated in place) to the ``status`` callback while
    running, and returned at the end. Rendering is left to the caller: see
    :meth:`stage_rows` and :meth:`to_dict`.

    Attributes:
        frames: frames processed (through every sink).
        dropped: frames the (live) source skipped because the loop was busy.
        bad_frames: frames the source could not decode (skipped).
        reconnects: how often a live source was reopened.
        wall_s: time from the start of the first frame to the end of the last.
        live: the source keeps only the newest frame.
        interrupted: stopped by a signal / ``stop_event`` / Ctrl+C before the source ended.
        stop_reason: ``running``, ``end``, ``max_frames``, ``stop``, ``interrupt``, ``window`` or ``error``.
        reconnecting: the source is reconnecting right now (for a status line).
        expected_frames: frames a video file declares (None for other sources).
        ended_early: why a file source ended before ``expected_frames`` (truncated / corrupt), else None.
        stages: ms per stage: capture, pre, infer, post, sink (annotation + outputs) and total.
        age: ms between capture and the start of inference (live sources).
    """

    source: str = ""
    frames: int = 0
    dropped: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    live: bool = False
    interrupted: bool = False
    stop_reason: str = "running"
    reconnecting: bool = False
    expected_frames: int | None = None
    ended_early: str | None = None
    stages: dict[str, LatencyStats] = field(default_factory=_stage_stats)
    age: LatencyStats = field(default_factory=lambda: LatencyStats("age"))

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time (first frame to last)."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def age_p50(self) -> float | None:
        """Median frame age in ms (live sources only; None otherwise)."""
        return self._age(50)

    @property
    def age_p99(self) -> float | None:
        return self._age(99)

    def _age(self, q: float) -> float | None:
        if not self.live or not self.age.count:
            return None
        return self.age.percentile(q)

    def stage_rows(self) -> list[tuple[str, float, float, float]]:
        """``(stage, mean_ms, p50_ms, p99_ms)`` for capture, pre, infer, post, sink, total (NaN if no frame)."""
        return [(name, st.mean, st.p50, st.p99) for name, st in self.stages.items()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--stats-json``); no NaN (empty stats are null)."""
        return {
            "source": self.source,
            "live": self.live,
            "frames": self.frames,
            "dropped": self.dropped,
            "bad_frames": self.bad_frames,
            "reconnects": self.reconnects,
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 3),
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "expected_frames": self.expected_frames,
            "ended_early": self.ended_early,
            "stages_ms": {name: st.summary() for name, st in self.stages.items()},
            "age_ms": self.age.summary() if self.live else None,
        }
