"""GpuPreprocessor's host code and the GPU path (kernel -> TensorRT on one stream, CUDA graph) on the CUDA simulator.

The kernel's own code runs in numba's CUDA simulator (test_preprocess_kernel.py); here a numpy
twin of it runs as deferred work on :mod:`cuda_sim`, so what is checked is the host side:
the staging buffer is not overwritten while an upload or kernel may still read it, the kernel
gets device (or mapped) memory, events are waited for before they are read, and the output
reaches TensorRT on its stream.
"""

from __future__ import annotations

from pathlib import Path

import fake_trt
import numpy as np
import pytest
from cuda_sim import CudaSim, SimError, SimKernel, SimNumbaCuda, cudaMemcpyKind, letterbox_normalize_reference

from edgecv.artifact import ModelMeta
from edgecv.cuda.preprocess import GpuPreprocessor
from edgecv.vision.letterbox import preprocess

D2D = cudaMemcpyKind.cudaMemcpyDeviceToDevice
META = ModelMeta("detect", ("a",), (64, 64), "yolov8", dynamic=False, stride=32, color="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _pre(sim: CudaSim, *, zero_copy: bool, stream: int | None = None) -> tuple[GpuPreprocessor, SimKernel]:
    kernel = SimKernel(sim, letterbox_normalize_reference, "letterbox_normalize")
    return GpuPreprocessor(META, stream, zero_copy=zero_copy, _cuda=SimNumbaCuda(sim), _kernel=kernel), kernel


@pytest.mark.parametrize("zero_copy", [False, True], ids=["pinned+upload", "mapped"])
def test_frames_queued_back_to_back_keep_their_own_values(zero_copy: bool) -> None:
    """Two frames preprocessed without a sync in between (a consumer copies each result on the stream): each stays itself."""
    sim = CudaSim(integrated=zero_copy)
    pre, kernel = _pre(sim, zero_copy=zero_copy)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(3)]
    kept, outs = [], []
    for frame in frames:
        out, transform = pre(frame)
        keep = sim.cudaMalloc(out.nbytes)[1]
        sim.cudaMemcpyAsync(keep, out.ptr, out.nbytes, D2D, pre.stream.handle)  # the consumer, on the same stream, not synchronized
        kept.append(keep)
        outs.append(out)
        assert transform == preprocess(frame, META)[1]
    sim.cudaDeviceSynchronize()
    for frame, keep, out in zip(frames, kept, outs):
        want = preprocess(frame, META)[0]
        got = np.frombuffer(sim.peek(keep, out.nbytes), np.float32).reshape(out.shape)
        assert np.abs(got - want).max() <= 1 / 255 / min(META.std) + 1e-5  # within one uint8 level (after /std)
    assert outs[0] is outs[1] is outs[2] and kernel.launches == 3  # output buffer reused: a stable address for a CUDA graph
    assert (pre._frame is None) == zero_copy  # mapped staging: the kernel reads it in place, no upload


def test_gpu_time_waits_for_the_frame_and_is_simulated_time() -> None:
    sim = CudaSim()
    pre, _ = _pre(sim, zero_copy=False)
    assert pre.gpu_ms is None
    pre(np.zeros((48, 80, 3), np.uint8))
    assert pre.gpu_ms == pytest.approx(sim.kernel_ms + 0.005 + 48 * 80 * 3 / sim.bandwidth)  # upload + kernel


def test_a_host_frame_never_reaches_the_kernel() -> None:
    sim = CudaSim()
    pre, kernel = _pre(sim, zero_copy=False)
    with pytest.raises(SimError, match="needs a device pointer"):
        kernel[(1, 1), (16, 16), 0](np.zeros((8, 8, 3), np.uint8), pre._out)  # what a host/device mix-up would launch


def test_gpu_preprocessing_feeds_tensorrt_on_its_stream_and_a_cuda_graph(det_onnx: Path, tmp_path: Path) -> None:
    """The TensorRT path end to end on the simulator: kernel on the engine's stream -> infer_on_device -> outputs; CUDA graph replays."""

    from edgecv.engine.tensorrt import TensorRTEngine

    engine_file = fake_trt.build_engine_file(det_onnx, tmp_path)
    sim = CudaSim()
    engine = TensorRTEngine(engine_file, cuda_graph=True, _trt=fake_trt.with_runtime(fake_trt.make("10.3.0"), sim), _cudart=sim)
    pre, _ = _pre(sim, zero_copy=False, stream=engine.stream)
    rng = np.random.default_rng(1)
    for _ in range(4):
        frame = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
        tensor, _ = pre(frame)
        got = engine.infer_on_device({"images": tensor})["output0"][0, :3, 0]
        np.testing.assert_allclose(got, preprocess(frame, META)[0].mean(axis=(2, 3))[0], atol=2e-3)
    assert sim.graph_launches == 3 and not sim.waits  # captured on the 2nd frame, then replayed; same stream: no event wait
    engine.close()
