"""Which ONNX Runtime thread policy wins in the run loop: each policy in its own process, alternating.

    python scripts/bench_thread_policy.py MODEL [--source VIDEO] [--rounds 3]

Policies: ONNX Runtime's threads with and without spinning, one thread (a core left to
capture and preprocessing), and frames in flight (``--inflight``: several single-threaded
calls at once, what ``edgecv run`` chooses for files on a multi-core CPU), each as bare
inference (pre-letterboxed tensors; with frames in flight, that many calls overlap) and as
the run loop (:func:`edgecv.stream.pipeline.run_sources`, no sinks, as ``edgecv run``). Every
(policy, kind) runs in a fresh process, in alternating order per round; medians, spread and
CPU ms per frame are printed, with ratios to the first line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
POLICIES = {
    "spinning (ONNX Runtime default)": {"spinning": True},
    "no spinning, 1 in flight": {"spinning": False},
    "1 thread, spinning": {"threads": 1, "spinning": True},
    f"2 in flight x {max(1, _CORES // 2)} thread(s) (run's choice)": {"threads": max(1, _CORES // 2), "inflight": 2},
}
if _CORES > 2:
    POLICIES[f"{_CORES} in flight x 1 thread"] = {"threads": 1, "inflight": _CORES}
CHILD = r"""
import json, sys, time
import edgecv
from edgecv.bench.latency import frames_from
from edgecv.bench.loop import infer_all
from edgecv.stream.pipeline import run_sources
from edgecv.stream.sources import open_source
from edgecv.stream.streaming import StreamConfig
kind, options, model_path, source = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
inflight = options.pop("inflight", 1)
with edgecv.load(model_path, **options) as model:
    if kind == "bare":
        tensors = [model.preprocess(f)[0] for f in frames_from(source, limit=100_000)]
        infer_all(model.engine, tensors[:10], inflight)
        wall, cpu = time.perf_counter(), time.process_time()
        infer_all(model.engine, tensors, inflight)
        wall, cpu, n = time.perf_counter() - wall, time.process_time() - cpu, len(tensors)
        print(json.dumps({"fps": n / wall, "cpu_ms": cpu * 1e3 / n}))
    else:
        cpu = time.process_time()
        with open_source(source) as src:
            summary = run_sources(model, [src], [[]], StreamConfig(inflight=inflight), annotate=False).sources[0]
        cpu = time.process_time() - cpu
        print(json.dumps({"fps": summary.fps, "cpu_ms": cpu * 1e3 / summary.frames}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--source", type=Path, default=ROOT / "models" / "demo.mp4")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    jobs = [(kind, name) for name in POLICIES for kind in ("bare", "loop")]
    results: dict[tuple[str, str], list[dict]] = {job: [] for job in jobs}
    print(f"model {args.model.name}, source {args.source.name}, {_CORES} usable cores, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for i in range(args.rounds):
        for kind, name in jobs if i % 2 == 0 else list(reversed(jobs)):
            run = subprocess.run([sys.executable, "-c", CHILD, kind, json.dumps(POLICIES[name]), str(args.model), str(args.source)],
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
            if run.returncode:
                raise SystemExit(f"{kind} {name} failed:\n{run.stderr[-2000:]}")
            results[(kind, name)].append(json.loads(run.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["fps"] for r in results[jobs[0]])
    for (kind, name), runs in results.items():
        fps = [r["fps"] for r in runs]
        print(f"{kind:5} {name:40} {statistics.median(fps):7.1f} FPS ({min(fps):.1f}-{max(fps):.1f})  "
              f"CPU {statistics.median(r['cpu_ms'] for r in runs):5.1f} ms/frame  x{statistics.median(fps) / base:.2f}")  # fmt: skip
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
