#!/usr/bin/env bash
# Quick start, command 2: set up the dev environment (CPU torch + export + test extras) and run the tests.
#   scripts/test.sh               fast tests (what CI's first step runs)
#   scripts/test.sh -m slow       the slow tests (CI's second step)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh dev
exec .venv/bin/python -m pytest "$@"
