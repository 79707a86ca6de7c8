"""Preprocessing on the GPU: one kernel from a uint8 BGR frame to the model's float32 NCHW input.

One launch does the letterbox (bilinear resize + constant padding), the BGR -> RGB swap,
``/ 255``, ``(x - mean) / std`` and HWC -> CHW, reading the frame uploaded once. It
samples the grid the CPU path uses (``cv2.resize`` with ``INTER_LINEAR``: source
coordinate ``(x + 0.5) * src / new - 0.5``, clamped at the borders) and rounds the
interpolated value to uint8 as the CPU path does before normalizing, so the two agree
within 1/255 (OpenCV interpolates in 11-bit fixed point, this kernel in float32).
The layout comes from :func:`edgecv.vision.letterbox.letterbox_geometry`, as on the CPU.

The kernel is numba.cuda: the same code runs on a GPU and, with
``NUMBA_ENABLE_CUDASIM=1``, in numba's CUDA simulator on a CPU, which is how CI runs it
(the tests compare it with the CPU path).

:class:`GpuPreprocessor` launches it on the caller's CUDA stream
(``numba.cuda.external_stream``), e.g. the TensorRT engine's, so no extra sync is
needed, with buffers kept from frame to frame (pinned staging and upload, or zero-copy
mapped memory on a Jetson), a stable output address (so a TensorRT CUDA graph can replay
on it) and CUDA-event timing of the stage.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.artifact import ModelMeta
from edgecv.vision.letterbox import LetterboxGeometry, LetterboxTransform, letterbox_geometry, pad_stride

BLOCK = (16, 16)  # threads per block (x = column, y = row): 256, a multiple of the 32-thread warp


def launch_config(out_hw: tuple[int, int], block: tuple[int, int] = BLOCK) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) covering an ``out_hw`` (h, w) output with one thread per output pixel."""
    out_h, out_w = out_hw
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {out_hw}")
    return (math.ceil(out_w / block[0]), math.ceil(out_h / block[1])), block


def normalization(meta: ModelMeta) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's per-channel ``mean`` and ``1 / std`` (float32, model channel order)."""
    return np.asarray(meta.mean, np.float32), (1.0 / np.asarray(meta.std, np.float64)).astype(np.float32)


def kernel_args(geometry: LetterboxGeometry, meta: ModelMeta) -> tuple[Any, ...]:
    """The scalar arguments of the kernel for this frame and model (pure; tested on the CPU)."""
    (new_h, new_w), (src_h, src_w) = geometry.new, geometry.src
    mean, inv_std = normalization(meta)
    return (
        np.float32(src_h / new_h), np.float32(src_w / new_w), new_h, new_w, geometry.top, geometry.left,
        np.float32(meta.pad_value), mean, inv_std, meta.color == "RGB",
    )  # fmt: skip


def _kernel() -> Any:
    """The compiled kernel (imports numba on first use; see :mod:`edgecv.cuda._kernels`)."""
    require("numba", extra="tensorrt")
    from edgecv.cuda._kernels import letterbox_normalize

    return letterbox_normalize


def _as_stream(cuda: Any, stream: Any) -> Any:
    """A numba stream from a numba stream, an int CUDA stream handle (e.g. TensorRT's), or 0 (the default stream)."""
    if isinstance(stream, int):
        return cuda.external_stream(stream) if stream else 0
    return stream


def _integrated_gpu(cuda: Any) -> bool:
    """True on a GPU that shares the host's memory (Jetson); numba's simulator has no device to ask."""
    device = getattr(cuda, "get_current_device", None)
    return bool(getattr(device(), "INTEGRATED", 0)) if device is not None else False


def on_device(array: Any) -> bool:
    """True for a GPU array (``__cuda_array_interface__``, or a numba device array, simulator included)."""
    return hasattr(array, "__cuda_array_interface__") or hasattr(array, "copy_to_host")


def _check_frame(frame: Any) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.shape} {frame.dtype}")


def _geometry(frame: Any, meta: ModelMeta) -> LetterboxGeometry:
    if meta.preprocess_in_graph:
        raise ValueError("this model preprocesses in its graph: feed the letterboxed uint8 frame instead")
    _check_frame(frame)
    return letterbox_geometry(
        frame.shape[:2], meta.input_size, stride=pad_stride(meta), align=meta.pad_align, rounding=meta.resize_rounding
    )


def _launch(kernel: Any, src: Any, out: Any, geometry: LetterboxGeometry, meta: ModelMeta, mean: Any, inv_std: Any, stream: Any) -> None:
    grid, block = launch_config(geometry.out)
    step_y, step_x, new_h, new_w, top, left, pad, _, _, rgb = kernel_args(geometry, meta)
    kernel[grid, block, stream](src, out, step_y, step_x, new_h, new_w, top, left, pad, mean, inv_std, rgb)


class GpuPreprocessor:
    """Letterbox + normalize frames on one CUDA stream, with buffers kept between frames.

    - A host frame is copied into pinned staging memory and uploaded asynchronously; on an
      integrated GPU (Jetson: CPU and GPU share the DRAM) the staging memory is mapped and
      the kernel reads it in place, with no upload at all.
    - The output buffer is reused while the letterboxed size stays the same: its device
      address is stable, so a TensorRT CUDA graph captured on it can be replayed.
    - CUDA events around upload + kernel give the stage's GPU time (:attr:`gpu_ms`).

    Not thread-safe: use one per thread (``edgecv.load`` models keep one per thread, on that
    thread's TensorRT stream). The returned array is overwritten by the next call.

    Args:
        meta: the model's metadata.
        stream: a numba stream, an int CUDA stream handle, or None for a new stream.
        zero_copy: read frames from mapped host memory (default: on integrated GPUs).
        device: the CUDA device (the engine's); numba then uses its primary context on this
            thread, the context cuda-python and TensorRT use.
        _cuda, _kernel: stand-ins for ``numba.cuda`` and the kernel (the tests' CUDA simulator).
    """

    def __init__(
        self, meta: ModelMeta, stream: Any = None, *, zero_copy: bool | None = None, device: int | None = None, _cuda: Any = None, _kernel: Any = None
    ) -> None:
        cuda = _cuda or require("numba.cuda", extra="tensorrt")
        if meta.preprocess_in_graph:
            raise ValueError("this model preprocesses in its graph: feed the letterboxed uint8 frame instead")
        if device is not None:
            cuda.select_device(device)
        self.meta = meta
        self._cuda = cuda
        self.stream = cuda.stream() if stream is None else _as_stream(cuda, stream)
        if zero_copy is None:
            zero_copy = _integrated_gpu(cuda)
        self.zero_copy = zero_copy
        mean, inv_std = normalization(meta)
        self._mean, self._inv_std = cuda.to_device(mean, stream=self.stream), cuda.to_device(inv_std, stream=self.stream)
        self._staging: Any = None  # pinned (or mapped) host copy of the frame
        self._frame: Any = None  # its device copy (not with zero_copy)
        self._out: Any = None
        self._events = (cuda.event(), cuda.event())
        self._pending = False
        self._kernel = _kernel

    def __call__(self, frame: np.ndarray | Any) -> tuple[Any, LetterboxTransform]:
        """``frame`` (BGR uint8 (H, W, 3), host or device array) -> (the (1, 3, h, w) float32 device array, transform)."""
        geometry = _geometry(frame, self.meta)
        start, end = self._events
        if self._pending:
            end.synchronize()  # the previous frame's upload and kernel may still read the staging buffer
        start.record(self.stream)
        src = frame if on_device(frame) else self._upload(frame)
        out_h, out_w = geometry.out
        if self._out is None or tuple(self._out.shape) != (1, 3, out_h, out_w):
            self._out = self._cuda.device_array((1, 3, out_h, out_w), np.float32, stream=self.stream)
        _launch(self._kernel or _kernel(), src, self._out, geometry, self.meta, self._mean, self._inv_std, self.stream)
        end.record(self.stream)
        self._pending = True
        return self._out, geometry.transform

    def _upload(self, frame: np.ndarray) -> Any:
        cuda = self._cuda
        if self._staging is None or self._staging.shape != frame.shape:
            self._staging = cuda.mapped_array(frame.shape, np.uint8) if self.zero_copy else cuda.pinned_array(frame.shape, np.uint8)
            self._frame = None if self.zero_copy else cuda.device_array(frame.shape, np.uint8, stream=self.stream)
        self._staging[...] = frame
        if self.zero_copy:
            return self._staging
        self._frame.copy_to_device(self._staging, stream=self.stream)
        return self._frame

    @property
    def gpu_ms(self) -> float | None:
        """GPU time of the last frame's upload + kernel, in ms (waits for them; None before the first frame)."""
        if not self._pending:
            return None
        start, end = self._events
        end.synchronize()
        return float(start.elapsed_time(end))
