"""What users measure: ``edgecv run`` against bare inference, each in its own process, alternating.

    python scripts/bench_run_vs_bare.py MODEL [--source VIDEO] [--rounds 5] [--run-args "--threads 1"]

Bare: two kinds, ONNX Runtime's defaults (worker threads spin) and edgecv's (no spinning); the
ratio is taken against the faster of the two. Each is a fresh process that decodes every frame of the video, letterboxes them with the model's own
preprocessing (outside the timing), warms up, then times ``engine.infer`` on each tensor in turn
(default threads unless ``--bare-threads``). A third bare kind uses ``run``'s own choice for a
file (:class:`edgecv.stream.policy.ParallelismConfig`: on a multi-core CPU, two calls in flight
with half the cores each); the loop's ratio to it is printed too: what the loop itself costs. Run: a fresh ``edgecv run MODEL
--source VIDEO --stats-json ...`` process (no sinks), whose FPS is frames / wall time of the loop,
as its summary prints. The two alternate for ``--rounds`` rounds so drift on a shared machine hits
both; medians are printed with the ratio and the spread (min-max) of each.

CPU time: the bare process reports the CPU seconds its inference loop used (all threads); for the
run process the CPU of a 1-frame run (start-up, model load, decoder open) is subtracted from the
full run's, so both are CPU ms per frame. With ``C`` usable cores the loop cannot exceed
``C * 1000 / cpu_ms_per_frame`` FPS (the CPU-time ceiling), whatever its threads do.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = r"""
import json, sys, time
import edgecv
from edgecv.bench.latency import frames_from
from edgecv.bench.loop import infer_all
model_path, source, threads, spinning = sys.argv[1], sys.argv[2], (int(sys.argv[3]) or None), sys.argv[4] == "1"
inflight = int(sys.argv[5])
frames = frames_from(source, limit=100_000)
with edgecv.load(model_path, threads=threads, spinning=spinning) as model:
    tensors = [model.preprocess(f)[0] for f in frames]
    infer_all(model.engine, tensors[:10], inflight)
    wall, cpu = time.perf_counter(), time.process_time()
    infer_all(model.engine, tensors, inflight)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"frames": len(tensors), "fps": len(tensors) / wall, "cpu_ms_per_frame": cpu * 1e3 / len(tensors)}))
"""


def _edgecv() -> list[str]:
    exe = Path(sys.executable).with_name("edgecv")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from edgecv.cli import main; main()"]


def _child_cpu(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd``; return it and the CPU seconds (user + sys) it used (the only child running)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise SystemExit(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), _last_child_cpu()


_CPU_SEEN = [0.0]


def _last_child_cpu() -> float:
    """CPU seconds of children reaped since the previous call (RUSAGE_CHILDREN is cumulative)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    delta, _CPU_SEEN[0] = total - _CPU_SEEN[0], total
    return delta


def bare(model: Path, source: Path, threads: int, spinning: bool, timeout: float, inflight: int = 1) -> dict:
    run, _ = _child_cpu([sys.executable, "-c", BARE, str(model), str(source), str(threads), str(int(spinning)), str(inflight)], timeout)
    if run.returncode != 0:
        raise SystemExit(f"bare inference failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def loop(model: Path, source: Path, extra: list[str], timeout: float, max_frames: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [*_edgecv(), "-q", "run", str(model), "--source", str(source), "--stats-json", str(stats), *extra]
        if max_frames:
            cmd += ["--max-frames", str(max_frames)]
        run, cpu = _child_cpu(cmd, timeout)
        if run.returncode != 0:
            raise SystemExit(f"edgecv run failed ({run.returncode}):\n{run.stderr[-2000:]}")
        data = json.loads(stats.read_text())
    return {"frames": data["frames"], "fps": data["fps"], "cpu_s": cpu, "infer_ms": (data["stages_ms"]["infer"] or {}).get("mean")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--source", type=Path, default=ROOT / "models" / "demo.mp4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bare-threads", type=int, default=0, help="ONNX Runtime intra-op threads for bare inference (0: its default)")
    parser.add_argument("--run-args", default="", help="extra arguments for edgecv run, e.g. \"--threads 1\"")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    extra = shlex.split(args.run_args)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    import onnxruntime

    print(f"model {args.model.name}, source {args.source.name}, {cores} usable cores, onnxruntime {onnxruntime.__version__}, "
          f"{args.rounds} alternating rounds, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    _last_child_cpu()
    startup = loop(args.model, args.source, extra, args.timeout, max_frames=1)  # start-up CPU, subtracted below
    from edgecv.stream.policy import ParallelismConfig

    plan = ParallelismConfig.choose(cpu_backend=True, live=False, threads=args.bare_threads or None)
    # (threads, spinning, inflight) per bare kind; the first two are what users run, the third is run's policy
    kinds = {"bare, ONNX Runtime defaults (spinning)": (args.bare_threads, True, 1), "bare, no spinning": (args.bare_threads, False, 1)}
    policy_kind = f"bare, {plan.inflight} in flight x {plan.threads or 'default'} thread(s)"
    if plan.inflight > 1:
        kinds[policy_kind] = (plan.threads or 0, False, plan.inflight)
    bares: dict[str, list[dict]] = {k: [] for k in kinds}
    loops: list[dict] = []
    start = time.perf_counter()
    for i in range(args.rounds):
        jobs = [*kinds, "run"]
        for job in jobs if i % 2 == 0 else reversed(jobs):  # alternate the order, so drift hits every kind alike
            if job == "run":
                loops.append(loop(args.model, args.source, extra, args.timeout))
            else:
                threads, spinning, inflight = kinds[job]
                bares[job].append(bare(args.model, args.source, threads, spinning, args.timeout, inflight))
    frames = loops[0]["frames"]
    l_fps = [r["fps"] for r in loops]
    l_cpu = statistics.median((r["cpu_s"] - startup["cpu_s"]) * 1e3 / max(r["frames"] - 1, 1) for r in loops)
    print(f"{'':40} {'median FPS':>10} {'min-max':>13} {'CPU ms/frame':>12} {'CPU ceiling FPS':>15}")
    best_name, best = "", 0.0
    for name, runs in bares.items():
        fps = [b["fps"] for b in runs]
        cpu = statistics.median(b["cpu_ms_per_frame"] for b in runs)
        print(f"{name:40} {statistics.median(fps):10.1f} {min(fps):6.1f}-{max(fps):<6.1f} {cpu:12.1f} {cores * 1e3 / cpu:15.1f}")
        if statistics.median(fps) > best and name != policy_kind:
            best_name, best = name, statistics.median(fps)
    label = "edgecv run " + " ".join(extra)
    print(f"{label:40} {statistics.median(l_fps):10.1f} {min(l_fps):6.1f}-{max(l_fps):<6.1f} {l_cpu:12.1f} {cores * 1e3 / l_cpu:15.1f}")
    per_round = [r["fps"] / max(b[i]["fps"] for k, b in bares.items() if k != policy_kind) for i, r in enumerate(loops)]
    print(f"run / best bare ({best_name}): {statistics.median(l_fps) / best:.3f}  "
          f"(per round: {', '.join(f'{x:.3f}' for x in per_round)}); "
          f"infer in the loop {statistics.median(r['infer_ms'] for r in loops):.1f} ms vs best bare {1e3 / best:.1f} ms; "
          f"{frames} frames, {time.perf_counter() - start:.0f} s, load average now {os.getloadavg()[0]:.2f}")  # fmt: skip
    if policy_kind in bares:
        same = statistics.median(b["fps"] for b in bares[policy_kind])
        print(f"run / bare with run's own policy ({policy_kind}): {statistics.median(l_fps) / same:.3f} (what the loop costs)")

if __name__ == "__main__":
    main()
