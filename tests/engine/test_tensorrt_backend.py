"""The TensorRT backend's host logic (manifest check, name-based I/O, buffers, threads) on a fake TensorRT + CUDA.

The fake CUDA hands out real host memory (ctypes buffers), so the pinned-buffer views,
the async copies and the output shapes are exercised for real; a GPU test (gpu + tensorrt
markers) runs the shipped detector through TensorRT and compares it with ONNX Runtime.
"""

from __future__ import annotations

import ctypes
import json
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


def _with_runtime(trt: object, deserialized: list, cudart: FakeCudart | None = None, *, nms: bool = False, dla_cores: int = 0) -> object:
    """Add the runtime side: an engine with images (-1, 3, -1, -1) -> output0 (B, 8, 4) = per-image channel means.

    ``nms``: the outputs of an in-graph NMS instead, 8 rows: image b has ``num_dets`` b + 2, ``boxes`` rows
    filled with (b, row, mean, 0), ``scores``/``classes`` = row. With ``cudart``, an enqueue on a capturing
    stream is recorded with the addresses and shapes of that moment (as a CUDA graph fixes them).
    """
    names = ["images", "num_dets", "boxes", "scores", "classes"] if nms else ["images", "output0"]

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}
            self.enqueues = 0

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            if shape[0] > 16:
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            b = self.shapes["images"][0]
            return {"output0": (b, 8, 4), "num_dets": (b, 1), "boxes": (b, 8, 4), "scores": (b, 8), "classes": (b, 8)}[name]

        def set_tensor_address(self, name: str, ptr: int) -> None:
            self.addresses[name] = ptr

        def execute_async_v3(self, stream: int) -> bool:
            addresses, shape = dict(self.addresses), self.shapes["images"]
            if cudart is None or not cudart.capture(stream, lambda: self._run(addresses, shape)):
                self._run(addresses, shape)
            return True

        def _run(self, addresses: dict[str, int], shape: tuple) -> None:
            self.enqueues += 1
            n = int(np.prod(shape))
            x = np.frombuffer((ctypes.c_float * n).from_address(addresses["images"]), np.float32).reshape(shape)
            b, mean = shape[0], x.mean(axis=(1, 2, 3))
            if nms:
                rows = np.arange(8, dtype=np.float32)
                boxes = np.zeros((b, 8, 4), np.float32)
                boxes[..., 0], boxes[..., 1], boxes[..., 2] = np.arange(b)[:, None], rows, mean[:, None]
                outs = {"num_dets": np.arange(2, b + 2, dtype=np.int32)[:, None], "boxes": boxes,
                        "scores": np.tile(rows, (b, 1)), "classes": np.tile(rows.astype(np.int32), (b, 1))}  # fmt: skip
            else:
                outs = {"output0": np.zeros((b, 8, 4), np.float32)}
                outs["output0"][:, :3, 0] = x.mean(axis=(2, 3))
            for name, out in outs.items():
                ctypes.memmove(addresses[name], out.ctypes.data, out.nbytes)

    class Engine:
        num_io_tensors = len(names)

        def get_tensor_name(self, i: int) -> str:
            return names[i]

        def get_tensor_mode(self, name: str) -> int:
            return 0 if name == "images" else 1

        def get_tensor_dtype(self, name: str) -> str:
            return "int32" if name in ("num_dets", "classes") else "float32"

        def get_tensor_shape(self, name: str) -> tuple:
            shapes = {"images": (-1, 3, -1, -1), "output0": (-1, 8, -1), "num_dets": (-1, 1), "boxes": (-1, 8, 4), "scores": (-1, 8), "classes": (-1, 8)}
            return shapes[name]

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        __slots__ = ("engine_host_code_allowed", "DLA_core")  # host code: TensorRT >= 8.6, for version-compatible plans

        num_DLA_cores = dla_cores  # noqa: N815 (read-only in TensorRT)

        def __init__(self, logger: object) -> None:
            self.engine_host_code_allowed = False
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            deserialized.append((data, self.engine_host_code_allowed))
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
    manifest = tmp_path / "det.engine.json"
    data = json.loads(manifest.read_text())
    data["engine"] |= {"gpu": "Orin", "compute_capability": "8.7"}
    manifest.write_text(json.dumps(data))
    return tmp_path / "det.engine"


def test_infer_by_name_with_growing_buffers_and_threads(engine_file: Path) -> None:
    deserialized: list = []
    trt, cudart = _with_runtime(fake_trt.make("10.3.0"), deserialized), FakeCudart()
    engine = TensorRTEngine(engine_file, device=1, threads=2, _trt=trt, _cudart=cudart)  # ONNX Runtime options are ignored
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
    assert cudart.stream_devices == {1: 1, 2: 1}  # each on the engine's GPU, whichever thread made it
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
    manifest = engine_file.with_name(engine_file.name + ".json")
    data = json.loads(manifest.read_text())
    data["engine"]["version_compatible"] = True  # built with --version-compatible: a newer runtime may load it
    manifest.write_text(json.dumps(data))
    TensorRTEngine(engine_file, _trt=trt, _cudart=FakeCudart()).close()
    assert deserialized[-1][1]  # with its lean runtime's host code allowed
    data["engine"]["dla_core"] = 1  # built for a DLA core: refused where there is none, run on that core where there is
    manifest.write_text(json.dumps(data))
    with pytest.raises(EngineError, match="built for DLA core 1, this device has no DLA"):
        TensorRTEngine(engine_file, _trt=trt, _cudart=FakeCudart())
    engine = TensorRTEngine(engine_file, _trt=_with_runtime(fake_trt.make("10.7.0"), deserialized, dla_cores=2), _cudart=FakeCudart())
    assert engine._runtime.DLA_core == 1
    engine.close()
    data["engine"]["dla_core"] = None
    manifest.write_text(json.dumps(data))
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
    assert not cudart.waits  # no producer stream named: nothing to wait for
    for stream, waits in ((engine.stream, 0), (77, 1)):  # written on another stream: TensorRT's stream waits on an event
        DeviceArray.__cuda_array_interface__ = {**DeviceArray.__cuda_array_interface__, "stream": stream}
        engine.infer_on_device({"images": DeviceArray()})
        assert len(cudart.waits) == waits
    assert cudart.waits == [(engine._state().stream, engine._state().handoff)]
    DeviceArray.__cuda_array_interface__ = {**DeviceArray.__cuda_array_interface__, "typestr": "<f2"}
    with pytest.raises(EngineError, match="on the GPU"):
        engine.infer_on_device({"images": DeviceArray()})
    engine.close()


def test_in_graph_nms_brings_back_only_the_detections(engine_file: Path) -> None:
    cudart = FakeCudart()
    engine = TensorRTEngine(engine_file, _trt=_with_runtime(fake_trt.make("10.3.0"), [], cudart, nms=True), _cudart=cudart)
    x = np.random.default_rng(3).random((3, 3, 32, 32), dtype=np.float32)
    out = engine.infer({"images": x})
    np.testing.assert_array_equal(out["num_dets"][:, 0], [2, 3, 4])
    assert out["boxes"].shape == (3, 4, 4) and out["scores"].shape == out["classes"].shape == (3, 4)  # the largest count: 4 rows
    np.testing.assert_array_equal(out["boxes"][:, :, 0], [[0] * 4, [1] * 4, [2] * 4])  # each image's own block of rows
    np.testing.assert_array_equal(out["boxes"][:, :, 1], [[0, 1, 2, 3]] * 3)
    np.testing.assert_allclose(out["boxes"][:, 0, 2], x.mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][2], [0, 1, 2, 3])
    # one strided copy per row output: 4 rows of 16 bytes from blocks 8 * 16 bytes apart, for 3 images
    assert (16 * 4, 16 * 8, 16 * 4, 3) in cudart.copies_2d and (4 * 4, 4 * 8, 4 * 4, 3) in cudart.copies_2d
    import edgecv.vision.decode as decode

    xyxy, scores, class_ids = decode.decode_nms_outputs(engine.infer({"images": x[:1]}))
    assert len(xyxy) == 1 and scores.tolist() == [1.0]  # batch 1: 2 detections, score > 0 keeps row 1
    engine.close()


def test_detection_copy_math() -> None:
    from edgecv.engine.tensorrt import detection_copy

    assert detection_copy(np.array([[3], [7]]), 100, 16) == (7, 112, 1600)
    assert detection_copy(np.array([[0]]), 100, 16) == (0, 0, 1600)
    assert detection_copy(np.array([[500]]), 100, 4) == (100, 400, 400)  # a bad count never reads past the output


def test_cuda_graph_is_captured_once_and_replayed_until_shape_or_address_change(engine_file: Path) -> None:
    cudart = FakeCudart()
    engine = TensorRTEngine(engine_file, cuda_graph=True, _trt=_with_runtime(fake_trt.make("10.3.0"), [], cudart), _cudart=cudart)
    rng = np.random.default_rng(4)
    frames = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(4)]
    for x in frames:  # 1st: plain enqueue (TensorRT's lazy setup), 2nd: capture + launch, then replays
        np.testing.assert_allclose(engine.infer({"images": x})["output0"][0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert cudart.graph_launches == 3 and len(cudart.graphs) == 1
    big = rng.random((2, 3, 32, 32), dtype=np.float32)  # a new shape (and a larger input buffer): plain enqueue, then a new graph
    for _ in range(2):
        np.testing.assert_allclose(engine.infer({"images": big})["output0"][:, :3, 0], big.mean(axis=(2, 3)), rtol=1e-6)
    assert cudart.graph_launches == 4 and len(cudart.graphs) == 1  # the old graph was destroyed

    class DeviceArray:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a
            self.__cuda_array_interface__ = {"shape": a.shape, "typestr": "<f4", "data": (a.ctypes.data, False), "version": 3, "strides": None}

    a, b = DeviceArray(frames[0]), DeviceArray(frames[1])
    for arr in (a, a, a, b):  # another address: the graph would read the old buffer, so it is not replayed
        np.testing.assert_allclose(engine.infer_on_device({"images": arr})["output0"][0, :3, 0], arr.a.mean(axis=(2, 3))[0], rtol=1e-6)
    assert cudart.graph_launches == 6
    engine.close()
    assert not cudart.graphs and not cudart.blocks


def test_engine_that_cannot_be_captured_falls_back_to_enqueues(engine_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    cudart = FakeCudart(fail_capture=True)
    engine = TensorRTEngine(engine_file, cuda_graph=True, _trt=_with_runtime(fake_trt.make("10.3.0"), [], cudart), _cudart=cudart)
    x = np.random.default_rng(5).random((1, 3, 32, 32), dtype=np.float32)
    for _ in range(4):
        np.testing.assert_allclose(engine.infer({"images": x})["output0"][0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert cudart.graph_launches == 0 and not cudart.captures and cudart.errors_cleared == 1
    assert sum("could not be captured into a CUDA graph" in r.message for r in caplog.records) == 1
    engine.close()
