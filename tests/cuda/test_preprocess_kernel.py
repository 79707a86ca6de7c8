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


ON_SIMULATOR_AND_GPU = pytest.mark.parametrize("simulator", [True, pytest.param(False, marks=pytest.mark.gpu)], ids=["simulator", "gpu"])


def _env(simulator: bool) -> dict[str, str]:
    """The test scripts run the same code in numba's CUDA simulator (CI) or on a real GPU."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return {**env, "NUMBA_ENABLE_CUDASIM": "1"} if simulator else env


@ON_SIMULATOR_AND_GPU
def test_kernel_matches_the_cpu_path(simulator: bool) -> None:
    pytest.importorskip("numba")
    env = _env(simulator)
    script = Path(__file__).with_name("sim_preprocess.py")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 5
    for r in results:
        assert r["cpu"] == r["gpu"] and r["same_transform"], r
        assert r["max_diff"] <= 1 / 255 + 1e-6, r  # within one uint8 level after normalization
    assert results[2]["max_diff"] < 1e-6  # no resize: the same values (float32 rounding only)


@ON_SIMULATOR_AND_GPU
def test_gpu_preprocessor_and_gpu_model(simulator: bool) -> None:
    pytest.importorskip("numba")
    pytest.importorskip("cv2")
    env = _env(simulator)
    script = Path(__file__).with_name("sim_gpu_model.py")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    facts = json.loads(run.stdout.splitlines()[-1])
    for mode in ("zero_copy=False", "zero_copy=True"):
        f = facts[mode]
        assert f["max_diff"] <= 1 / 255 + 1e-6, f  # the CPU path, within one uint8 level
        assert f["out_reused"] and f["staging_reused"], f  # kept while the frame size stays, replaced when it changes
        assert isinstance(f["gpu_ms"], float)
    assert facts["zero_copy=False"]["device_copy"] and not facts["zero_copy=True"]["device_copy"]  # mapped memory: no upload
    m = facts["model"]
    assert m["gpu_preprocess"] and m["on_device"] == 3  # every frame went to the engine on the device
    assert all(m["agree"]) and m["found"] >= 2, m  # same detections as the CPU path, boxes within a pixel
    assert m["stage_sum"] == 4.5  # moving the GPU time between stages keeps the total


@pytest.mark.gpu
def test_preprocessor_on_a_cuda_python_stream_matches_the_cpu_path() -> None:
    """The TensorRT path: the kernel launched on a stream created by cuda-python (an int handle)."""
    pytest.importorskip("numba")
    from edgecv.cuda.preprocess import GpuPreprocessor
    from edgecv.engine.trt_compat import check_cuda, import_cudart
    from edgecv.vision.letterbox import preprocess

    cudart = import_cudart()
    stream = check_cuda(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
    meta = ModelMeta("detect", ("a",), (640, 640), "yolov8", dynamic=False, stride=32)
    pre = GpuPreprocessor(meta, stream=int(stream))
    frame = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    for _ in range(3):
        out, _ = pre(frame)
    check_cuda(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
    want, _ = preprocess(frame, meta)
    assert np.abs(out.copy_to_host() - want).max() <= 1 / 255 + 1e-6
    assert pre.gpu_ms is not None and pre.gpu_ms > 0
    cudart.cudaStreamDestroy(stream)


def test_kernel_arithmetic_stays_float32() -> None:
    """Jetson GPUs run float64 at a small fraction of the float32 rate: type the kernel's body
    with numba on the CPU (cuda.grid replaced by arguments) and look for float64 values."""
    pytest.importorskip("numba")
    import inspect
    import io

    from numba import njit

    import edgecv.cuda._kernels as kernels

    source = inspect.getsource(kernels.letterbox_normalize.py_func)
    source = source.replace("@cuda.jit\n", "").replace("def letterbox_normalize(src,", "def cpu_twin(x, y, src,").replace("    x, y = cuda.grid(2)\n", "")
    namespace = dict(vars(kernels))
    exec(source, namespace)  # noqa: S102 - our own kernel's source
    twin = njit(namespace["cpu_twin"])
    f32 = np.float32
    twin(3, 4, np.zeros((10, 12, 3), np.uint8), np.zeros((1, 3, 8, 8), f32), f32(1.2), f32(1.5), 8, 8, 0, 0, f32(114), np.zeros(3, f32), np.ones(3, f32), True)
    typed = io.StringIO()
    twin.inspect_types(file=typed)
    assert not [line for line in typed.getvalue().splitlines() if "::" in line and "float64" in line]
