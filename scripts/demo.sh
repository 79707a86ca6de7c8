#!/usr/bin/env bash
# Quick start, command 1: set up the runtime (no torch) and run the shipped detector on the demo video.
# Writes runs/demo.mp4 (annotated) and runs/demo.jsonl (detections per frame).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
mkdir -p runs
.venv/bin/edgecv run --save runs/demo.mp4 --jsonl runs/demo.jsonl "$@"
