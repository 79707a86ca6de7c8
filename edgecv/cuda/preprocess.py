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
(the tests compare it with the CPU path). It launches on the caller's CUDA stream
(``numba.cuda.external_stream``), e.g. the TensorRT engine's, so no extra sync is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.artifact import ModelMeta
from edgecv.vision.letterbox import LetterboxGeometry, LetterboxTransform, letterbox_geometry

BLOCK = (16, 16)  # threads per block (x = column, y = row): 256, a multiple of the 32-thread warp


def launch_config(out_hw: tuple[int, int], block: tuple[int, int] = BLOCK) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) covering an ``out_hw`` (h, w) output with one thread per output pixel."""
    out_h, out_w = out_hw
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {out_hw}")
    return (math.ceil(out_w / block[0]), math.ceil(out_h / block[1])), block


def kernel_args(geometry: LetterboxGeometry, meta: ModelMeta) -> tuple[Any, ...]:
    """The scalar arguments of the kernel for this frame and model (pure; tested on the CPU)."""
    (new_h, new_w), (src_h, src_w) = geometry.new, geometry.src
    mean = np.asarray(meta.mean, np.float32)
    inv_std = (1.0 / np.asarray(meta.std, np.float64)).astype(np.float32)
    return (
        np.float32(src_h / new_h), np.float32(src_w / new_w), new_h, new_w, geometry.top, geometry.left,
        np.float32(meta.pad_value), mean, inv_std, meta.color == "RGB",
    )  # fmt: skip


def _kernel() -> Any:
    """The compiled kernel (imports numba on first use; see :mod:`edgecv.cuda._kernels`)."""
    require("numba", extra="tensorrt")
    from edgecv.cuda._kernels import letterbox_normalize

    return letterbox_normalize


def preprocess_cuda(frame: np.ndarray | Any, meta: ModelMeta, *, stream: Any = 0, out: Any = None) -> tuple[Any, LetterboxTransform]:
    """Letterbox + normalize ``frame`` (BGR uint8 (H, W, 3), host or numba device array) on the GPU.

    Args:
        frame: the camera frame; a host array is uploaded once on ``stream``.
        meta: the model's metadata (input size, stride when dynamic, pad value, color, mean/std, pad_align).
        stream: a numba stream, or an int CUDA stream handle (wrapped with ``cuda.external_stream``).
        out: a (1, 3, h, w) float32 device array to write into (e.g. the engine's input buffer).

    Returns:
        The (1, 3, h, w) float32 device array and the transform that maps boxes back.
    """
    cuda = require("numba.cuda", extra="tensorrt")
    if meta.preprocess_in_graph:
        raise ValueError("this model preprocesses in its graph: feed the letterboxed uint8 frame instead")
    if isinstance(stream, int):
        stream = cuda.external_stream(stream) if stream else 0  # 0: the default stream
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.shape} {frame.dtype}")
    geometry = letterbox_geometry(frame.shape[:2], meta.input_size, stride=meta.stride if meta.dynamic else None, align=meta.pad_align)
    on_device = hasattr(frame, "__cuda_array_interface__") or hasattr(frame, "copy_to_host")
    src = frame if on_device else cuda.to_device(np.ascontiguousarray(frame), stream=stream)
    out_h, out_w = geometry.out
    if out is None:
        out = cuda.device_array((1, 3, out_h, out_w), np.float32, stream=stream)
    elif tuple(out.shape) != (1, 3, out_h, out_w):
        raise ValueError(f"output buffer is {tuple(out.shape)}, this frame needs (1, 3, {out_h}, {out_w})")
    grid, block = launch_config(geometry.out)
    step_y, step_x, new_h, new_w, top, left, pad, mean, inv_std, rgb = kernel_args(geometry, meta)
    _kernel()[grid, block, stream](
        src, out, step_y, step_x, new_h, new_w, top, left, pad, cuda.to_device(mean, stream=stream), cuda.to_device(inv_std, stream=stream), rgb
    )
    return out, geometry.transform
