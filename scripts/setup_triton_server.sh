#!/usr/bin/env bash
# A real Triton Inference Server for the smoke tests (tests/deploy/test_triton_server.py), in its own venv.
# PyTriton's wheel bundles tritonserver 2.51 with the Python backend only (CPU works; no ONNX Runtime or
# TensorRT backend). Its Python-backend stub needs numpy < 2 (a round trip failed under numpy 2), which is
# why it does not share .venv. The served models import edgecv's runtime, installed here without extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-triton/bin/python ] || "$PY" -m venv .venv-triton
PIP=".venv-triton/bin/python -m pip --disable-pip-version-check -q"
$PIP install "nvidia-pytriton==0.7.0" "numpy<2" opencv-python-headless onnxruntime
$PIP install --no-deps -e .
$PIP install typer rich
.venv-triton/bin/python -c "import numpy, cv2, onnxruntime, edgecv.deploy.python_backend; print('triton server venv ok, numpy', numpy.__version__)"
