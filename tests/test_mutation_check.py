"""The GPU path's tests catch GPU bugs: scripts/mutation_check.py removes each synchronization / swaps each
host-device pointer in engine/tensorrt.py and cuda/preprocess.py, and every mutation must fail a simulator test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_mutation_is_caught() -> None:
    pytest.importorskip("onnx")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation_check.py")], capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "SURVIVED" not in run.stdout and " mutations caught" in run.stdout
