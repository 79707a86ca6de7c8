"""The TensorRT backend's host logic (manifest check, name-based I/O, buffers, threads) on a fake TensorRT + CUDA.

The fake CUDA hands out real host memory (ctypes buffers), so the pinned-buffer views,
the async copies and the output shapes are exercised for real; a GPU test (gpu + tensorrt
markers) runs the shipped detector through TensorRT and compares it with ONNX Runtime.
"""

from __future__ import annotations

import ctypes
import shutil
import threading
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

import fake_trt  # noqa: E402
from fake_trt import FakeCudart  # noqa: E402

from edgecv.engine.builder import build_engine  # noqa: E402
from edgecv.engine.tensorrt import TensorRTEngine  # noqa: E402
from edgecv.errors import EngineError  # noqa: E402


def _with_runtime(trt: object, deserialized: list) -> object:
    """Add the runtime side: an engine with images (-1, 3, -1, -1) -> output0 (B, 8, 4) = per-image channel means."""

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            if shape[0] > 16:
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            return (self.shapes["images"][0], 8, 4)

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addresses[name] = ptr

        def execute_async_v3(self, stream: int) -> bool:
            shape = self.shapes["images"]
            n = int(np.prod(shape))
            x = np.frombuffer((ctypes.c_float * n).from_address(self.addresses["images"]), np.float32).reshape(shape)
            out = np.zeros((shape[0], 8, 4), np.float32)
            out[:, :3, 0] = x.mean(axis=(2, 3))
            ctypes.memmove(self.addresses["output0"], out.ctypes.data, out.nbytes)
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i: int) -> str:
            return ["images", "output0"][i]

        def get_tensor_mode(self, name: str) -> int:
            return 0 if name == "images" else 1

        def get_tensor_dtype(self, name: str) -> str:
            return "float32"

        def get_tensor_shape(self, name: str) -> tuple:
            return (-1, 3, -1, -1) if name == "images" else (-1, 8, -1)

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            deserialized.append(data)
            return Engine() if data.startswith(b"PLAN") else None

    trt.Runtime = Runtime
    trt.TensorIOMode = types.SimpleNamespace(INPUT=0, OUTPUT=1)
    trt.nptype = np.dtype
    return trt


@pytest.fixture
def engine_file(det_onnx: Path, tmp_path: Path) -> Path:
    onnx_path = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    build_engine(onnx_path, tmp_path / "det.engine", trt=fake_trt.make("10.3.0"))
    # the builder had no GPU to read: record the one this fake CUDA reports
    import json

    manifest = tmp_path / "det.engine.json"
    data = json.loads(manifest.read_text())
    data["engine"] |= {"gpu": "Orin", "compute_capability": "8.7"}
    manifest.write_text(json.dumps(data))
    return tmp_path / "det.engine"


def test_infer_by_name_with_growing_buffers_and_threads(engine_file: Path) -> None:
    deserialized: list = []
    trt, cudart = _with_runtime(fake_trt.make("10.3.0"), deserialized), FakeCudart()
    engine = TensorRTEngine(engine_file, threads=2, _trt=trt, _cudart=cudart)  # ONNX Runtime options are ignored
    assert [s.name for s in engine.inputs] == ["images"] and engine.outputs[0].shape == (-1, 8, -1)
    assert engine.meta.names == ("circle", "rectangle", "triangle", "star")
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    out = engine.infer({"images": x})["output0"].copy()  # outputs live in reused pinned buffers
    np.testing.assert_allclose(out[0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert engine.last_gpu_ms == 1.25  # CUDA-event time of the enqueue
    big = np.random.default_rng(1).random((4, 3, 128, 160), dtype=np.float32)  # larger: buffers grow once
    np.testing.assert_allclose(engine.infer({"images": big})["output0"][:, :3, 0], big.mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(EngineError, match="outside the engine's optimization profile"):
        engine.infer({"images": np.zeros((17, 3, 64, 64), np.float32)})
    results = {}

    def worker() -> None:
        results["thread"] = engine.infer({"images": x})["output0"].copy()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    np.testing.assert_allclose(results["thread"], out)
    assert cudart.streams == 2  # one stream (and context) per thread
    engine.close()
    assert not cudart.blocks  # every device and pinned buffer freed
    assert len(deserialized) == 1


def test_mismatched_engine_is_refused_before_deserializing(engine_file: Path) -> None:
    deserialized: list = []
    trt = _with_runtime(fake_trt.make("10.7.0"), deserialized)
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0, this machine has TensorRT 10.7.0") as err:
        TensorRTEngine(engine_file, _trt=trt, _cudart=FakeCudart())
    assert "edgecv build-engine" in err.value.hint and not deserialized
    with pytest.raises(EngineError, match=r"sm_87\), this GPU is Orin \(sm_89\)"):
        TensorRTEngine(engine_file, _trt=_with_runtime(fake_trt.make("10.3.0"), deserialized), _cudart=FakeCudart(cc=(8, 9)))
    engine_file.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="could not deserialize"):
        TensorRTEngine(engine_file, _trt=_with_runtime(fake_trt.make("10.3.0"), deserialized), _cudart=FakeCudart())


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_shipped_detector_on_tensorrt_matches_onnxruntime(det_onnx: Path, tmp_path: Path) -> None:
    import edgecv
    from edgecv.bench.latency import synthetic_frames

    engine_path = build_engine(Path(shutil.copy(det_onnx, tmp_path / "det.onnx")), tmp_path / "det.engine").path
    frames = synthetic_frames(4)
    with edgecv.load(det_onnx) as ort_model, edgecv.load(engine_path) as trt_model:
        for frame in frames:
            feeds, _ = ort_model.preprocess(frame)
            ref = ort_model.infer(feeds)["output0"]
            got = trt_model.infer(feeds)["output0"]
            np.testing.assert_allclose(got, ref, atol=1e-2, rtol=1e-3)  # FP32 engine (TF32 may round)


def test_inputs_already_on_the_gpu_skip_the_upload(engine_file: Path) -> None:
    trt, cudart = _with_runtime(fake_trt.make("10.3.0"), []), FakeCudart()
    engine = TensorRTEngine(engine_file, _trt=trt, _cudart=cudart)
    x = np.random.default_rng(2).random((1, 3, 32, 48), dtype=np.float32)

    class DeviceArray:  # what numba / CuPy arrays expose (here backed by host memory, as the fake CUDA is)
        __cuda_array_interface__ = {"shape": x.shape, "typestr": "<f4", "data": (x.ctypes.data, False), "version": 3, "strides": None}

    out = engine.infer_on_device({"images": DeviceArray()})["output0"]
    np.testing.assert_allclose(out[0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert "images" not in engine._state().buffers  # nothing uploaded
    DeviceArray.__cuda_array_interface__ = {**DeviceArray.__cuda_array_interface__, "typestr": "<f2"}
    with pytest.raises(EngineError, match="on the GPU"):
        engine.infer_on_device({"images": DeviceArray()})
    engine.close()
