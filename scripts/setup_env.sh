#!/usr/bin/env bash
# Create .venv (once) and install edgecv into it.
#   scripts/setup_env.sh            runtime only: ONNX Runtime + OpenCV, no torch
#   scripts/setup_env.sh dev        + export extra (CPU torch) + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
if [ "${1:-}" = "dev" ]; then
  # torch first and pinned to the CPU build: resolved with no torch present, `torch>=2.1` would
  # pull a multi-GB CUDA build (pyproject keeps the range open for Jetson's own wheels).
  .venv/bin/python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
  $PIP install -e ".[opencv,export,test]"
else
  $PIP install -e ".[opencv]"
fi
