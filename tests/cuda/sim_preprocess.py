"""Run the CUDA preprocessing kernel (in numba's CUDA simulator when NUMBA_ENABLE_CUDASIM=1) and compare with the CPU path.

Prints one JSON line per case: the case, the output shapes and the max abs difference.
"""

from __future__ import annotations

import json

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.cuda.preprocess import GpuPreprocessor
from edgecv.vision.letterbox import preprocess

CASES = [
    # (frame h, w, model input h, w, dynamic, color, mean, std, align)
    (48, 80, 64, 64, True, "RGB", (0, 0, 0), (1, 1, 1), "center"),  # downscale, minimal padding
    (30, 20, 64, 64, False, "RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "center"),  # upscale, ImageNet
    (64, 64, 64, 64, False, "BGR", (0, 0, 0), (1, 1, 1), "center"),  # no resize: exact copy
    (40, 72, 64, 64, False, "BGR", (0, 0, 0), (1 / 255,) * 3, "top-left"),  # YOLOX: 0-255, pad right/bottom
    (37, 61, 32, 64, True, "RGB", (0, 0, 0), (1, 1, 1), "center"),  # odd sizes
]

rng = np.random.default_rng(0)
for h, w, ih, iw, dynamic, color, mean, std, align in CASES:
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    meta = ModelMeta("detect", ("a",), (ih, iw), "yolov8", dynamic=dynamic, stride=16, color=color, mean=mean, std=std, pad_align=align)
    want, t_cpu = preprocess(frame, meta)
    got, t_gpu = GpuPreprocessor(meta)(frame)
    got = got.copy_to_host()
    scale = float(max(1.0, np.max(1.0 / np.asarray(std))))  # a 1-level difference is 1/255/std after normalization
    print(json.dumps({
        "case": [h, w, ih, iw, align], "cpu": list(want.shape), "gpu": list(got.shape),
        "max_diff": float(np.abs(got - want).max()) / scale, "same_transform": t_cpu == t_gpu,
    }))  # fmt: skip
