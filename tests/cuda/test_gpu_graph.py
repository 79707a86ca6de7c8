"""On a real GPU (``gpu`` marker, no TensorRT needed): the preprocessing kernel captured into a CUDA graph and replayed,
and pinned/mapped staging with events, against the CPU path. Run by ``scripts/gpu_check.sh``."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.artifact import ModelMeta

pytestmark = pytest.mark.gpu

META = ModelMeta("detect", ("a",), (640, 640), "yolov8", dynamic=False, stride=32)


def _cudart():  # type: ignore[no-untyped-def]
    pytest.importorskip("numba")
    from edgecv.engine.trt_compat import check_cuda, import_cudart

    return import_cudart(), check_cuda


def test_kernel_captured_into_a_cuda_graph_replays_on_new_frames() -> None:
    from numba import cuda

    from edgecv.cuda.preprocess import GpuPreprocessor, _geometry, _kernel, _launch
    from edgecv.vision.letterbox import preprocess

    cudart, check = _cudart()
    stream = check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
    pre = GpuPreprocessor(META, stream=int(stream), zero_copy=False)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(3)]
    pre(frames[0])  # compiles the kernel and allocates the buffers (neither can be captured)
    check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
    geometry = _geometry(frames[0], META)
    mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    check(cudart, cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
    _launch(_kernel(), pre._frame, pre._out, geometry, META, pre._mean, pre._inv_std, cuda.external_stream(int(stream)))
    graph = check(cudart, cudart.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
    graph_exec = check(cudart, cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
    for frame in frames[1:]:  # new data in the same device buffer, the captured kernel replayed
        pre._frame.copy_to_device(frame, stream=cuda.external_stream(int(stream)))
        check(cudart, cudart.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")
        check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        want, _ = preprocess(frame, META)
        assert np.abs(pre._out.copy_to_host() - want).max() <= 1 / 255 + 1e-6
    cudart.cudaGraphExecDestroy(graph_exec)
    cudart.cudaGraphDestroy(graph)
    cudart.cudaStreamDestroy(stream)


@pytest.mark.parametrize("zero_copy", [False, True], ids=["pinned", "mapped"])
def test_staging_modes_and_events_on_the_gpu(zero_copy: bool) -> None:
    """Back-to-back frames (no sync between them) through pinned or mapped staging match the CPU path; events time them."""
    from edgecv.cuda.preprocess import GpuPreprocessor
    from edgecv.vision.letterbox import preprocess

    cudart, check = _cudart()
    stream = check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
    pre = GpuPreprocessor(META, stream=int(stream), zero_copy=zero_copy)
    rng = np.random.default_rng(1)
    kept = []
    for _ in range(4):
        frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        out, _ = pre(frame)
        kept.append((frame, out.copy_to_host(stream=pre.stream)))  # queued on the stream; host copy completes before the next frame's staging write
        assert pre.gpu_ms is not None and pre.gpu_ms > 0
    check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
    for frame, got in kept:
        assert np.abs(got - preprocess(frame, META)[0]).max() <= 1 / 255 + 1e-6
    cudart.cudaStreamDestroy(stream)
