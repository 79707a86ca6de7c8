#!/usr/bin/env python
"""What the live preview and /metrics cost the run loop: loop FPS in four conditions, as ratios, in one run.

    .venv/bin/python scripts/bench_serve.py [--frames 150] [--rounds 3] [--model M] [--source V]

Conditions, alternated round by round so machine noise hits them alike:

* ``none``     no server at all (the baseline);
* ``closed``   ``--serve`` on, nobody watching (the loop drops frames into the mailbox, nothing is encoded);
* ``open``     one viewer reading the MJPEG stream (another process, like a browser on a laptop);
* ``scraped``  nobody watching, ``/metrics`` scraped every second (another process, like Prometheus).

Per condition: the loop's FPS; this process's CPU time per frame (loop, capture and server threads,
not the viewer's or scraper's process); and the loop thread's own CPU time per frame (what the
server must not add to). CPU times are disturbed less than FPS by other load on the machine.

The loop runs a video file (looped) as fast as it can (not --realtime), so FPS is the loop's throughput.
The viewer and scraper run on the same machine here, so ``open`` also pays for their CPU; on a
robot watched from a laptop only the encoder thread's cost remains.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import edgecv
from edgecv import assets
from edgecv.serve import PreviewServer, ServeConfig
from edgecv.stream.pipeline import run_pipeline
from edgecv.stream.sources import open_source

VIEWER = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port))
s.sendall(b"GET /stream/cam0.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
n = 0
while True:
    data = s.recv(1 << 16)
    if not data:
        break
    n += data.count(b"--edgecvframe")
"""

SCRAPER = r"""
import sys, time, urllib.request
url = sys.argv[1]
while True:
    urllib.request.urlopen(url + "metrics").read()
    time.sleep(1.0)
"""

CONDITIONS = ("none", "closed", "open", "scraped")


def trial(model: object, source_spec: str, frames: int, condition: str, serve_fps: float) -> dict[str, float]:
    server = helper = None
    sinks: list[object] = []
    status = None
    try:
        if condition != "none":
            server = PreviewServer(ServeConfig(port=0, max_fps=serve_fps))
            sinks.append(server.sink("cam0", model=model, source=source_spec))
            status = server.hub.status_callback("cam0")
            if condition == "open":
                helper = subprocess.Popen([sys.executable, "-c", VIEWER, "127.0.0.1", str(server.port)])
                deadline = time.monotonic() + 10
                while server.hub.channels()[0].viewers == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
            elif condition == "scraped":
                helper = subprocess.Popen([sys.executable, "-c", SCRAPER, server.url])
        src = open_source(source_spec, loop=True)
        cpu0, thread0 = time.process_time(), time.thread_time()
        summary = run_pipeline(model, src, sinks, max_frames=frames, status=status, overlay=False)
        n = max(summary.frames, 1)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / n
        loop_ms = (time.thread_time() - thread0) * 1e3 / n  # run_pipeline's loop runs on this thread
        encoded = server.hub.channels()[0].encoded if server is not None else 0
        return {"fps": summary.fps, "cpu_ms": cpu_ms, "loop_ms": loop_ms, "sink_p50_ms": summary.stages["sink"].p50, "encoded": encoded}
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
        if server is not None:
            server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped detector")
    ap.add_argument("--source", default=None, help="video file (default: the demo video)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--serve-fps", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    model = edgecv.load(args.model or assets.shipped(assets.DEFAULT_MODELS["detect"]))
    source = str(args.source or assets.demo_video())
    trial(model, source, 30, "none", args.serve_fps)  # warm-up (ONNX Runtime, page cache)
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    for r in range(args.rounds):
        order = CONDITIONS if r % 2 == 0 else tuple(reversed(CONDITIONS))
        for c in order:
            runs[c].append(trial(model, source, args.frames, c, args.serve_fps))
    base = statistics.median(x["fps"] for x in runs["none"])
    base_cpu = statistics.median(x["cpu_ms"] for x in runs["none"])
    base_loop = statistics.median(x["loop_ms"] for x in runs["none"])
    print(f"model {model.path.name}, source {Path(source).name}, {args.frames} frames x {args.rounds} rounds, preview cap {args.serve_fps:g} fps")
    print(f"{'condition':<10} {'FPS (median)':>12} {'FPS ratio':>10} {'process CPU ms/frame':>21} {'ratio':>6} "
          f"{'loop-thread CPU ms/frame':>25} {'ratio':>6} {'sink p50 ms':>12} {'JPEGs':>6}   FPS per round")
    out = {}
    for c in CONDITIONS:
        fps = [x["fps"] for x in runs[c]]
        med = statistics.median(fps)
        sink = statistics.median(x["sink_p50_ms"] for x in runs[c])
        enc = statistics.median(x["encoded"] for x in runs[c])
        cpu = statistics.median(x["cpu_ms"] for x in runs[c])
        loop = statistics.median(x["loop_ms"] for x in runs[c])
        out[c] = {"fps_median": med, "fps_ratio": med / base, "fps": fps, "cpu_ms_per_frame": cpu, "cpu_ratio": cpu / base_cpu,
                  "loop_cpu_ms_per_frame": loop, "loop_cpu_ratio": loop / base_loop, "sink_p50_ms": sink, "encoded_median": enc}
        print(f"{c:<10} {med:12.1f} {med / base:10.3f} {cpu:21.2f} {cpu / base_cpu:6.3f} {loop:25.2f} {loop / base_loop:6.3f} "
              f"{sink:12.3f} {enc:6.0f}   " + " ".join(f"{v:.0f}" for v in fps))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    model.close()


if __name__ == "__main__":
    main()
