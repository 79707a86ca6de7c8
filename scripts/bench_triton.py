"""Inference through a Triton server vs local ONNX Runtime, alternating in one run (ratios, not absolutes).

    python tests/deploy/triton_server.py REPO &      # or any tritonserver serving `edgecv deploy triton` output
    python scripts/bench_triton.py models/shapes-det.onnx --http http://127.0.0.1:PORT --grpc grpc://127.0.0.1:PORT

Prints the median infer ms per backend and its ratio to local; rounds alternate local/http/grpc so a
shared machine's noise hits all three alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import edgecv
from edgecv.data.synthetic import make_scene


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--http")
    parser.add_argument("--grpc")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    models = {"local": edgecv.load(args.model)}
    for name in ("http", "grpc"):
        if getattr(args, name):
            models[name] = edgecv.load(args.model, triton=getattr(args, name))
    frame = make_scene(np.random.default_rng(0), 480, 640)[0]
    feeds, _ = models["local"].preprocess(frame)
    feeds = {k: np.concatenate([v] * args.batch) for k, v in feeds.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm up
        for _ in range(3):
            m.engine.infer(feeds)
    for _ in range(args.rounds):
        for name, m in models.items():
            for _ in range(args.per_round):
                t0 = time.perf_counter()
                m.engine.infer(feeds)
                times[name].append((time.perf_counter() - t0) * 1e3)
    base = statistics.median(times["local"])
    for name, ms in times.items():
        med = statistics.median(ms)
        print(f"{name:6s} batch {args.batch}: median {med:6.2f} ms  ({med / base:4.2f}x local)  n={len(ms)}")


if __name__ == "__main__":
    main()
