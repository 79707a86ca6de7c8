#!/usr/bin/env bash
# The wheel runs its own demo (CI step, issue 14):
#   1. build the wheel from this checkout (it carries the shipped models and the demo video);
#   2. install it in a fresh venv WITHOUT the opencv extra: `edgecv run` must fail with one line and exit 3;
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
cd "$work"  # away from the checkout: only the installed wheel can be imported
set +e
"$work/venv/bin/edgecv" run --max-frames 30 >"$work/no-opencv.log" 2>&1
rc=$?
set -e
cat "$work/no-opencv.log"
if [ "$rc" -ne 3 ] || ! grep -q "edgecv\[opencv\]" "$work/no-opencv.log" || grep -q Traceback "$work/no-opencv.log"; then
  echo "wheel smoke: without OpenCV, expected exit 3 with the install line and no traceback (got $rc)" >&2
  exit 1
fi
$pip install "${wheel}[opencv]"
"$work/venv/bin/edgecv" run --max-frames 30 --jsonl "$work/demo.jsonl"
lines=$(wc -l <"$work/demo.jsonl")
[ "$lines" -eq 30 ] || { echo "wheel smoke: expected 30 JSONL lines, got $lines" >&2; exit 1; }
echo "wheel smoke: ok ($wheel)"
