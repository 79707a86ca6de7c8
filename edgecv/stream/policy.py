"""How the run loop spends the CPU: ONNX Runtime threads per inference and inferences in flight.

One ONNX Runtime call with N intra-op threads does not keep N cores busy: between its parallel
sections the workers wait (or spin, burning the cores that decoding and preprocessing need),
and the loop's own work (decode, letterbox, NMS) runs while they idle. Two calls in flight with
N/2 threads each overlap those gaps. Measured with a YOLOv8n-size model at 320 on a 2-core
machine (``scripts/bench_run_vs_bare.py`` and ``scripts/bench_thread_policy.py``, separate
processes, alternating): bare inference with ONNX Runtime's defaults (2 spinning threads) ran
165-170 FPS, 2 threads without spinning 134-140, one thread 91-94, two one-thread calls in
flight 179-183; ``edgecv run`` with two in flight 0.965-0.967 of the fastest of those bare runs.

The cost is latency: each frame's inference takes about as long as on N/2 threads. So the
automatic choice overlaps calls only where throughput is what is asked for: files and image
folders (not live cameras or streams, where the newest frame should go through as fast as it
can), on ONNX Runtime's CPU provider (a GPU runs one call at a time anyway), with at least two
usable cores and no ``--threads`` (a thread count given is a budget: it is kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgecv.errors import ConfigError


def usable_cores() -> int:
    """The CPUs this process may run on (taskset, a container's cpuset), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ParallelismConfig:
    """Inferences in flight and ONNX Runtime threads per inference for one run.

    Attributes:
        inflight: batches inferred at once (:attr:`edgecv.stream.StreamConfig.inflight`).
        threads: intra-op threads per ONNX Runtime session; None leaves ONNX Runtime's choice
            (one per usable core).
        reason: why, in a few words (logged and printed with the run summary).
    """

    inflight: int
    threads: int | None
    reason: str

    def __post_init__(self) -> None:
        if self.inflight < 1:
            raise ConfigError(f"inflight must be >= 1, got {self.inflight}", hint="1 infers one frame at a time")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}", hint="leave it out for one per core")

    @classmethod
    def choose(cls, *, cpu_backend: bool, live: bool, threads: int | None = None, inflight: int | None = None, cores: int | None = None) -> ParallelismConfig:
        """The run's parallelism: what was asked for, else the automatic choice (module docstring).

        Args:
            cpu_backend: the model runs on ONNX Runtime's CPU provider (threads apply).
            live: a source is live (camera, stream, ``--realtime``): latency first.
            threads: ``--threads``, or None.
            inflight: ``--inflight``, or None for automatic.
            cores: usable cores (default :func:`usable_cores`).
        """
        cores = usable_cores() if cores is None else cores
        if inflight is not None:
            if threads is None and cpu_backend and inflight > 1:
                threads = max(1, cores // inflight)
                return cls(inflight, threads, f"{inflight} in flight as asked, {threads} thread(s) each ({cores} cores)")
            return cls(inflight, threads, f"{inflight} in flight as asked")
        if not cpu_backend:
            return cls(1, threads, "one at a time (not on the CPU)")
        if live:
            return cls(1, threads, "one at a time (live source: latency first)")
        if threads is not None:
            return cls(1, threads, f"one at a time ({threads} thread(s) as asked)")
        if cores < 2:
            return cls(1, None, "one at a time (one core)")
        return cls(2, cores // 2, f"2 in flight, {cores // 2} thread(s) each ({cores} cores, file source)")
