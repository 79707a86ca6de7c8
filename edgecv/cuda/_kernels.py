"""The numba.cuda kernels (imported only when the GPU path or the CUDA simulator is used).

``numba.cuda`` is a module-level global on purpose: numba's CUDA simulator swaps the
``cuda`` global of a kernel's module to emulate threads, which a closure would hide.
The arithmetic stays in float32 (``float32(...)`` casts, float32 constants): a Python
float literal would promote it to float64, which Jetson GPUs run at a small fraction of
the float32 rate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_MAX = np.float32(255.0)
_INV_255 = np.float32(1.0 / 255.0)


@cuda.jit
def letterbox_normalize(src, dst, step_y, step_x, new_h, new_w, top, left, pad, mean, inv_std, rgb):  # type: ignore[no-untyped-def]
    x, y = cuda.grid(2)
    out_h, out_w = dst.shape[2], dst.shape[3]
    if x >= out_w or y >= out_h:
        return
    src_h, src_w = src.shape[0], src.shape[1]
    cy, cx = y - top, x - left
    inside = cy >= 0 and cx >= 0 and cy < new_h and cx < new_w
    if inside:
        fy = (float32(cy) + _HALF) * step_y - _HALF
        fx = (float32(cx) + _HALF) * step_x - _HALF
        y0 = int(math.floor(fy))
        x0 = int(math.floor(fx))
        wy = fy - float32(y0)
        wx = fx - float32(x0)
        if y0 < 0:
            y0, wy = 0, _ZERO
        if y0 >= src_h - 1:
            y0, wy = src_h - 1, _ZERO
        if x0 < 0:
            x0, wx = 0, _ZERO
        if x0 >= src_w - 1:
            x0, wx = src_w - 1, _ZERO
        y1 = min(y0 + 1, src_h - 1)
        x1 = min(x0 + 1, src_w - 1)
    for k in range(3):
        c = 2 - k if rgb else k  # output channel k reads BGR channel c
        if inside:
            top_row = float32(src[y0, x0, c]) * (_ONE - wx) + float32(src[y0, x1, c]) * wx
            bottom_row = float32(src[y1, x0, c]) * (_ONE - wx) + float32(src[y1, x1, c]) * wx
            value = float32(math.floor(top_row * (_ONE - wy) + bottom_row * wy + _HALF))  # uint8 rounding, as cv2.resize
            value = min(max(value, _ZERO), _MAX)
        else:
            value = pad
        dst[0, k, y, x] = (value * _INV_255 - mean[k]) * inv_std[k]
