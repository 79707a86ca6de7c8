"""GpuPreprocessor and a Model preprocessing on the GPU, in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1).

Prints one JSON line of facts the test asserts: buffer reuse, agreement with the CPU
path (both staging modes), and detections of the shipped detector fed by the kernel
through a TensorRT-like engine vs. the ONNX Runtime CPU path.
"""

from __future__ import annotations

import json
import threading

import numpy as np
from numba import cuda

from edgecv import assets
from edgecv.api import Detector
from edgecv.bench.latency import synthetic_frames
from edgecv.cuda.preprocess import GpuPreprocessor
from edgecv.engine.registry import load_engine
from edgecv.vision.letterbox import preprocess

facts: dict = {}
rng = np.random.default_rng(0)
# the shipped detector (dynamic H/W) at a 64 px input: the simulator runs every GPU thread in Python
ort = load_engine(assets.shipped("shapes-det"))
ort.meta = meta = ort.meta.replace(input_size=(64, 64))
cpu_model = Detector(ort, conf=0.1)

# --- GpuPreprocessor: same values as the CPU path, buffers kept while the size is the same
for zero_copy in (False, True):
    pre = GpuPreprocessor(meta, zero_copy=zero_copy)
    diffs, outs, staging = [], [], []
    for h, w in ((60, 80), (60, 80), (40, 100)):  # all resized; the last one to a smaller output
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out, transform = pre(frame)
        want, want_t = preprocess(frame, meta)
        diffs.append(float(np.abs(out.copy_to_host() - want).max()))
        outs.append(id(out))
        staging.append(id(pre._staging))
        assert transform == want_t
    facts[f"zero_copy={zero_copy}"] = {
        "max_diff": max(diffs), "out_reused": outs[0] == outs[1] != outs[2], "staging_reused": staging[0] == staging[1] != staging[2],
        "device_copy": pre._frame is not None, "gpu_ms": pre.gpu_ms,
    }  # fmt: skip


# --- a Detector on a TensorRT-like engine: GPU preprocessing on the engine's stream, inputs handed over on the device
class DeviceEngine:
    backend = "tensorrt"

    def __init__(self) -> None:
        self.cpu = cpu_model.engine
        self.meta, self.inputs, self.outputs, self.path = self.cpu.meta, self.cpu.inputs, self.cpu.outputs, self.cpu.path
        self.local = threading.local()
        self.on_device = 0

    @property
    def stream(self):  # type: ignore[no-untyped-def]
        if not hasattr(self.local, "stream"):
            self.local.stream = cuda.stream()
        return self.local.stream

    def infer_on_device(self, feeds):  # type: ignore[no-untyped-def]
        self.on_device += 1
        return self.cpu.infer({k: v.copy_to_host() for k, v in feeds.items()})

    def close(self) -> None:
        pass


engine = DeviceEngine()
gpu_model = Detector(engine, conf=0.1)
agree, found = [], 0
for frame in synthetic_frames(3, size=(96, 128)):
    got, want = gpu_model(frame), cpu_model(frame)
    same = len(got) == len(want) and np.array_equal(got.class_ids, want.class_ids)
    agree.append(bool(same and (len(got) == 0 or np.abs(got.xyxy - want.xyxy).max() < 1.0)))
    found += len(want)
pre_ms, infer_ms = gpu_model.stage_ms(0.5, 4.0)
facts["model"] = {
    "gpu_preprocess": gpu_model.gpu_preprocess, "on_device": engine.on_device, "agree": agree, "found": found,
    "stage_sum": pre_ms + infer_ms, "pre_ms": pre_ms,
}  # fmt: skip
print(json.dumps(facts))
