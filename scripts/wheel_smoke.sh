#!/usr/bin/env bash
# The wheel runs its own demo (CI step, issue 14):
#   1. build the wheel from this checkout (it carries the shipped models and the demo video);
#   2. install it in a fresh venv with no extra: every command that needs OpenCV, torch, onnx or TensorRT
#      fails with one line naming the install command and exit 3 (info works);
#   3. add the opencv extra: `edgecv run --max-frames 30` (default model + demo video) must exit 0.
# Usage: scripts/wheel_smoke.sh [WORKDIR]   (default: a temp folder, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
PY=${PYTHON:-python3}
rm -rf "$work/dist" build
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation . -w "$work/dist"
rm -rf build edgecv.egg-info
wheel=$(ls "$work"/dist/edgecv-*.whl)
rm -rf "$work/venv"
"$PY" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip --disable-pip-version-check -q"
$pip install "$wheel"
.venv/bin/edgecv -q shapes "$work/data" --images 2 >/dev/null  # a dataset for eval/calibrate, made with the dev venv
model="$work/venv/lib/python3"*/site-packages/edgecv/_models/shapes-det.onnx
model=$(echo $model)
cd "$work"  # away from the checkout: only the installed wheel can be imported
# every command in a venv with no extra at all (no OpenCV, torch, onnx, TensorRT):
# exit 3 with the install line, or work (info needs only ONNX Runtime); never a traceback
check() {
  local want=$1; shift
  set +e
  "$work/venv/bin/edgecv" "$@" >"$work/cmd.log" 2>&1
  local rc=$?
  set -e
  if [ "$rc" -ne "$want" ] || grep -q Traceback "$work/cmd.log" || { [ "$want" -eq 3 ] && ! grep -q "fix:.*pip install 'edgecv\[" "$work/cmd.log"; }; then
    cat "$work/cmd.log"
    echo "wheel smoke: 'edgecv $*' without extras: expected exit $want with one error line, got $rc" >&2
    exit 1
  fi
  echo "no extras: edgecv $1 -> exit $rc: $(grep -m1 -E '^error:' "$work/cmd.log" || echo ok)"
}
check 3 run --max-frames 30
check 3 eval "$model" --data "$work/data"
check 3 bench "$model" -n 2
check 3 shapes "$work/shapes"
check 3 export shapes-det -o "$work/x.onnx"
check 3 convert "$model" --fp16 -o "$work/y.onnx"
check 3 calibrate "$model" "$work/data"
check 3 prune shapes-det --ratio 0.5
check 3 build-engine "$model" -o "$work/z.engine"
check 0 info "$model"
$pip install "${wheel}[opencv]"
"$work/venv/bin/edgecv" run --max-frames 30 --jsonl "$work/demo.jsonl"
lines=$(wc -l <"$work/demo.jsonl")
[ "$lines" -eq 30 ] || { echo "wheel smoke: expected 30 JSONL lines, got $lines" >&2; exit 1; }
echo "wheel smoke: ok ($wheel)"
