"""The numba.cuda kernels (imported only when the GPU path or the CUDA simulator is used).

``numba.cuda`` is a module-level global on purpose: numba's CUDA simulator swaps the
``cuda`` global of a kernel's module to emulate threads, which a closure would hide.
"""

from __future__ import annotations

import math

from numba import cuda


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
        fy = (cy + 0.5) * step_y - 0.5
        fx = (cx + 0.5) * step_x - 0.5
        y0 = int(math.floor(fy))
        x0 = int(math.floor(fx))
        wy = fy - y0
        wx = fx - x0
        if y0 < 0:
            y0, wy = 0, 0.0
        if y0 >= src_h - 1:
            y0, wy = src_h - 1, 0.0
        if x0 < 0:
            x0, wx = 0, 0.0
        if x0 >= src_w - 1:
            x0, wx = src_w - 1, 0.0
        y1 = min(y0 + 1, src_h - 1)
        x1 = min(x0 + 1, src_w - 1)
    for k in range(3):
        c = 2 - k if rgb else k  # output channel k reads BGR channel c
        if inside:
            top_row = src[y0, x0, c] * (1.0 - wx) + src[y0, x1, c] * wx
            bottom_row = src[y1, x0, c] * (1.0 - wx) + src[y1, x1, c] * wx
            value = math.floor(top_row * (1.0 - wy) + bottom_row * wy + 0.5)  # uint8 rounding, as cv2.resize
            value = min(max(value, 0.0), 255.0)
        else:
            value = pad
        dst[0, k, y, x] = (value * (1.0 / 255.0) - mean[k]) * inv_std[k]
