#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: the GPU tests, a kernel-vs-CPU timing, TensorRT tests when present.
#
#   bash scripts/gpu_check.sh            # report in $OUT (if set) or out/gpu_check/
#
# Needs no network: edgecv is installed from this working tree (--no-deps, no index) into a venv that
# sees the machine's packages (--system-site-packages: numpy, onnxruntime, cuda-bindings, numba-cuda,
# CuPy, PyTorch, OpenCV when present). Every step has its own time limit (the whole run stays under
# 8 minutes) and a missing piece is a clear SKIP line in the report, never a hang. Exit status: 0 when
# every step that ran passed (skips included), 1 otherwise.
#
# Pure-Python/CPU prerequisites the GPU image may lack (OpenCV, Typer, rich, pytest) are installed from
# a wheelhouse in the tree when one is there (no index): fill it on a machine with network with
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d wheels opencv-python-headless typer rich pytest
# (wheels/ is git-ignored; pass it with the tree). PYTHON picks the interpreter; GPU_CHECK_NO_VENV=1
# uses it directly instead of a venv on top of it.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT_DIR=${OUT:-$REPO/out/gpu_check}
mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/gpu_check.md
LOG=$OUT_DIR/gpu_check.log
PY=${PYTHON:-python3}
START=$(date +%s)
: >"$LOG"
FAILED=0

say() { echo "$*" | tee -a "$REPORT"; }
BUDGET=${GPU_CHECK_BUDGET_S:-450}  # all steps together stay inside this (the machine gives 8 minutes)
step() {  # step NAME SECONDS CMD...: run with a time limit, log the output, one status line in the report
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s) rc
  local left=$(( BUDGET - (t0 - START) ))
  if [ "$left" -lt 15 ]; then say "- SKIP $name: out of time (budget ${BUDGET} s)"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" >>"$LOG"
  timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  case $rc in
    0) say "- PASS $name (${dt} s)";;
    124|137) say "- FAIL $name: timed out after ${limit} s"; FAILED=1;;
    5) say "- SKIP $name: no test selected (${dt} s)";;
    *) say "- FAIL $name: exit $rc (${dt} s), see gpu_check.log"; FAILED=1;;
  esac
  return $rc
}

{
  echo "# edgecv GPU check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(uname -m), $(nproc) cores"
  echo
} >"$REPORT"

# ---- the machine
if command -v nvidia-smi >/dev/null; then
  GPU=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
  say "GPU: ${GPU:-nvidia-smi did not answer}"
else
  say "GPU: no nvidia-smi"
fi

# ---- edgecv from this tree, no network
VENV=$OUT_DIR/venv
if [ "${GPU_CHECK_NO_VENV:-0}" = 1 ]; then
  VPY=$PY
else
  if [ ! -x "$VENV/bin/python" ]; then
    timeout 120 "$PY" -m venv --system-site-packages "$VENV" >>"$LOG" 2>&1 || { say "- FAIL venv: $PY -m venv failed"; exit 1; }
  fi
  VPY=$VENV/bin/python
fi
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# edgecv is pure Python: an editable install without building anything is a .pth line pointing at this tree
# (pip install --no-deps --no-build-isolation -e . needs setuptools and wheel in the venv, which may be absent)
if timeout 90 "$VPY" -m pip install -q --no-deps --no-build-isolation -e "$REPO" >>"$LOG" 2>&1; then
  say "- PASS install edgecv: pip install --no-deps --no-index -e ."
else
  SITE=$(timeout 60 "$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$REPO" >"$SITE/edgecv-worktree.pth" || { say "- FAIL install edgecv: cannot write $SITE"; exit 1; }
  say "- PASS install edgecv: a .pth line to this tree (pip could not build it here: no setuptools/wheel)"
fi
step "import edgecv from this tree" 60 "$VPY" -c "import edgecv, pathlib, sys; p = pathlib.Path(edgecv.__file__).resolve(); print(p); sys.exit(0 if p.is_relative_to(pathlib.Path('$REPO').resolve()) else 1)" || exit 1
cd "$OUT_DIR"  # run from outside the tree, so the installed edgecv is the one imported
VERSIONS=$(timeout 60 "$VPY" - <<'EOF' 2>>"$LOG"
import importlib, sys
def v(name):
    try:
        m = importlib.import_module(name)
        return getattr(m, "__version__", "present")
    except Exception as exc:
        return f"missing ({type(exc).__name__})"
names = ["numpy", "cv2", "onnxruntime", "onnx", "pytest", "typer", "rich", "numba", "numba.cuda", "cuda.bindings", "cupy", "torch", "tensorrt"]
print(f"python {sys.version.split()[0]}; " + "; ".join(f"{n} {v(n)}" for n in names))
EOF
)
say "Packages: ${VERSIONS:-could not import python packages}"
HAS() { timeout 60 "$VPY" -c "import $1" >/dev/null 2>&1; }
declare -A WHEEL=([cv2]=opencv-python-headless [pytest]=pytest [typer]=typer [rich]=rich)
for need in cv2 pytest typer rich; do
  if ! HAS "$need" && [ -d "$REPO/wheels" ]; then
    timeout 120 "$VPY" -m pip install -q --no-index --find-links "$REPO/wheels" "${WHEEL[$need]}" >>"$LOG" 2>&1 \
      && say "- installed ${WHEEL[$need]} from wheels/"
  fi
done
for need in numpy cv2 pytest typer rich; do
  HAS "$need" || { say "- FAIL prerequisites: '$need' is not importable and cannot be installed without network (pip install it, then rerun)"; exit 1; }
done
GPU_OK=$(timeout 60 "$VPY" -c "
from cuda.bindings import runtime as rt
err, n = rt.cudaGetDeviceCount()
print(n if int(err) == 0 else 0)" 2>>"$LOG" || echo 0)
say "CUDA devices seen by cuda-bindings: ${GPU_OK:-0}"
say ""
say "## Steps"
PYTEST=("$VPY" -m pytest -p no:cacheprovider -q -rs --rootdir "$REPO" -c "$REPO/pyproject.toml")
if [ "${GPU_OK:-0}" -gt 0 ] 2>/dev/null; then
  # the gpu tests that need no TensorRT: kernel vs CPU (1/255), pinned/mapped staging, streams, events, CUDA graph of the kernel
  step "gpu tests without TensorRT" 200 "${PYTEST[@]}" -m "gpu and not tensorrt" "$REPO/tests/cuda" "$REPO/tests/engine" "$REPO/tests/quant/test_trt_calibrator.py"
  grep -E "passed|failed|skipped|error" "$LOG" | tail -1 | sed 's/^/  pytest: /' | tee -a "$REPORT"
  # the kernel against the CPU letterbox on a 1280x720 frame -> 640x640
  step "kernel vs CPU letterbox timing" 60 "$VPY" - <<'EOF'
import statistics, time
import numpy as np
from numba import cuda
from edgecv.artifact import ModelMeta
from edgecv.cuda.preprocess import GpuPreprocessor
from edgecv.vision.letterbox import preprocess
meta = ModelMeta("detect", ("a",), (640, 640), "yolov8", dynamic=False, stride=32)
frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
pre = GpuPreprocessor(meta)
for _ in range(20):
    out, _ = pre(frame); preprocess(frame, meta)
cuda.synchronize()
cpu, gpu, kernel = [], [], []
for _ in range(200):
    t = time.perf_counter(); preprocess(frame, meta); cpu.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter(); out, _ = pre(frame); ms = pre.gpu_ms; gpu.append((time.perf_counter() - t) * 1e3); kernel.append(ms)
diff = float(np.abs(out.copy_to_host() - preprocess(frame, meta)[0]).max())
c, g, k = statistics.median(cpu), statistics.median(gpu), statistics.median(kernel)
line = f"1280x720 -> 640x640, 200 frames, medians: CPU letterbox {c:.2f} ms; GPU {g:.2f} ms end to end (staging + upload + kernel + wait), {k:.3f} ms GPU time (events); CPU/GPU {c / g:.2f}x; max diff {diff * 255:.2f}/255"
print(line)
open("timing.txt", "w").write(line + "\n")
EOF
  [ -f "$OUT_DIR/timing.txt" ] && sed 's/^/  /' "$OUT_DIR/timing.txt" | tee -a "$REPORT"
  if HAS tensorrt; then
    step "TensorRT tests" 150 "${PYTEST[@]}" -m tensorrt "$REPO/tests"
    grep -E "passed|failed|skipped|error" "$LOG" | tail -1 | sed 's/^/  pytest: /' | tee -a "$REPORT"
  else
    say "- SKIP TensorRT tests: tensorrt is not importable here"
  fi
else
  say "- SKIP gpu tests, timing, TensorRT tests: no CUDA device visible to cuda-bindings (driver, CUDA_VISIBLE_DEVICES?)"
fi
say "- simulator tests (no GPU needed), for comparison"
step "CUDA simulator tests" 60 "${PYTEST[@]}" "$REPO/tests/cuda/test_cuda_sim.py" "$REPO/tests/cuda/test_gpu_preprocessor_sim.py" "$REPO/tests/engine/test_tensorrt_backend.py"
say ""
say "Total $(( $(date +%s) - START )) s; log: gpu_check.log"
exit $FAILED
