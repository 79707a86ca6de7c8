"""The CUDA preprocessing kernel: launch math on the CPU, and the kernel's own code in numba's CUDA simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecv.artifact import ModelMeta
from edgecv.cuda.preprocess import kernel_args, launch_config
from edgecv.vision.letterbox import letterbox_geometry


def test_launch_config_covers_the_output_with_whole_blocks() -> None:
    assert launch_config((192, 256)) == ((16, 12), (16, 16))
    assert launch_config((193, 250)) == ((16, 13), (16, 16))
    with pytest.raises(ValueError):
        launch_config((0, 10))


def test_kernel_args_follow_the_cpu_geometry() -> None:
    meta = ModelMeta("detect", ("a",), (256, 256), "yolov8", dynamic=True, stride=32, color="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    g = letterbox_geometry((480, 640), meta.input_size, stride=32)
    assert (g.new, g.out, g.top, g.left) == ((192, 256), (192, 256), 0, 0)
    step_y, step_x, new_h, new_w, top, left, pad, mean, inv_std, rgb = kernel_args(g, meta)
    assert (step_y, step_x) == (2.5, 2.5) and (new_h, new_w, top, left, pad, rgb) == (192, 256, 0, 0, 114, True)
    np.testing.assert_allclose(inv_std, [4, 2, 1])


def test_kernel_matches_the_cpu_path_in_the_cuda_simulator() -> None:
    pytest.importorskip("numba")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    script = Path(__file__).with_name("sim_preprocess.py")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 5
    for r in results:
        assert r["cpu"] == r["gpu"] and r["same_transform"], r
        assert r["max_diff"] <= 1 / 255 + 1e-6, r  # within one uint8 level after normalization
    assert results[2]["max_diff"] < 1e-6  # no resize: the same values (float32 rounding only)
