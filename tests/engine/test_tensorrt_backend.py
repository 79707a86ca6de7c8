"""The TensorRT backend's host logic (manifest check, name-based I/O, buffers, threads, CUDA graphs) on the CUDA simulator.

:mod:`cuda_sim` defers every copy and enqueue until a synchronization, keeps device memory
apart from host memory and poisons freed memory, so a missing sync or a host/device pointer
mix-up fails these tests (``scripts/mutation_check.py`` shows it); a GPU test (gpu + tensorrt
markers) runs the shipped detector through TensorRT and compares it with ONNX Runtime.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

import fake_trt  # noqa: E402
from cuda_sim import CudaSim, SimError, cudaMemcpyKind  # noqa: E402

from edgecv.engine.builder import build_engine  # noqa: E402
from edgecv.engine.tensorrt import TensorRTEngine  # noqa: E402
from edgecv.errors import EngineError  # noqa: E402


def _trt(version: str, sim: CudaSim, deserialized: list | None = None, **options: object) -> object:
    return fake_trt.with_runtime(fake_trt.make(version), sim, deserialized, **options)


@pytest.fixture
def engine_file(det_onnx: Path, tmp_path: Path) -> Path:
    return fake_trt.build_engine_file(det_onnx, tmp_path)


def test_infer_by_name_with_growing_buffers_and_threads(engine_file: Path) -> None:
    deserialized: list = []
    sim = CudaSim()
    engine = TensorRTEngine(engine_file, device=1, threads=2, _trt=_trt("10.3.0", sim, deserialized), _cudart=sim)  # ORT options are ignored
    assert [s.name for s in engine.inputs] == ["images"] and engine.outputs[0].shape == (-1, 8, -1)
    assert engine.meta.names == ("circle", "rectangle", "triangle", "star")
    x = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    out = engine.infer({"images": x})["output0"].copy()  # outputs live in reused pinned buffers
    np.testing.assert_allclose(out[0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert engine.last_gpu_ms == pytest.approx(2.0)  # CUDA events around the enqueue: the simulated network time, copies excluded
    big = np.random.default_rng(1).random((4, 3, 128, 160), dtype=np.float32)  # larger: buffers grow once
    np.testing.assert_allclose(engine.infer({"images": big})["output0"][:, :3, 0], big.mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(engine.infer({"images": x})["output0"], out)  # smaller again, in the grown buffers
    with pytest.raises(EngineError, match="outside the engine's optimization profile"):
        engine.infer({"images": np.zeros((17, 3, 64, 64), np.float32)})
    results = {}

    def worker() -> None:
        results["thread"] = engine.infer({"images": x})["output0"].copy()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    np.testing.assert_allclose(results["thread"], out)
    assert len(sim.stream_devices) == 2 and set(sim.stream_devices.values()) == {1}  # a stream per thread, on the engine's GPU
    engine.close()
    assert not sim.live()  # every device and pinned buffer freed
    assert len(deserialized) == 1


def test_mismatched_engine_is_refused_before_deserializing(engine_file: Path) -> None:
    deserialized: list = []
    trt = _trt("10.7.0", CudaSim(), deserialized)
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0, this machine has TensorRT 10.7.0") as err:
        TensorRTEngine(engine_file, _trt=trt, _cudart=CudaSim())
    assert "edgecv build-engine" in err.value.hint and not deserialized
    with pytest.raises(EngineError, match=r"sm_87\), this GPU is Orin \(sm_89\)"):
        TensorRTEngine(engine_file, _trt=_trt("10.3.0", CudaSim(), deserialized), _cudart=CudaSim(cc=(8, 9)))
    manifest = engine_file.with_name(engine_file.name + ".json")
    data = json.loads(manifest.read_text())
    data["engine"]["version_compatible"] = True  # built with --version-compatible: a newer runtime may load it
    manifest.write_text(json.dumps(data))
    TensorRTEngine(engine_file, _trt=trt, _cudart=CudaSim()).close()
    assert deserialized[-1][1]  # with its lean runtime's host code allowed
    data["engine"]["dla_core"] = 1  # built for a DLA core: refused where there is none, run on that core where there is
    manifest.write_text(json.dumps(data))
    with pytest.raises(EngineError, match="built for DLA core 1, this device has no DLA"):
        TensorRTEngine(engine_file, _trt=trt, _cudart=CudaSim())
    engine = TensorRTEngine(engine_file, _trt=_trt("10.7.0", CudaSim(), deserialized, dla_cores=2), _cudart=CudaSim())
    assert engine._runtime.DLA_core == 1
    engine.close()
    data["engine"]["dla_core"] = None
    manifest.write_text(json.dumps(data))
    engine_file.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="could not deserialize"):
        TensorRTEngine(engine_file, _trt=_trt("10.3.0", CudaSim(), deserialized), _cudart=CudaSim())


def test_loading_an_engine_does_not_survey_the_machine(engine_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest check reads TensorRT, the GPU and /etc/nv_tegra_release only: no nvidia-smi, nvcc, dpkg-query, nvpmodel."""

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"loading an engine ran a command: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setitem(sys.modules, "edgecv.bench.environment", None)  # importing the survey would raise
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    sim = CudaSim()
    with TensorRTEngine(engine_file, _trt=_trt("10.3.0", sim), _cudart=sim) as engine:
        assert engine.infer({"images": np.ones((1, 3, 64, 64), np.float32)})["output0"][0, 0, 0] == 1.0


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


def _device_input(sim: CudaSim, x: np.ndarray, stream: int = 0) -> object:
    """``x`` in simulated device memory, written on ``stream`` (async when it is not 0), as numba / CuPy arrays expose it."""
    ptr = sim.cudaMalloc(x.nbytes)[1]
    staging = sim.cudaMallocHost(x.nbytes)[1]
    np.frombuffer((np.ctypeslib.as_ctypes_type(np.uint8) * x.nbytes).from_address(staging), np.uint8)[:] = x.view(np.uint8).ravel()
    sim.cudaMemcpyAsync(ptr, staging, x.nbytes, cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    class DeviceArray:
        __cuda_array_interface__ = {"shape": x.shape, "typestr": "<f4", "data": (ptr, False), "version": 3, "strides": None,
                                    **({"stream": stream} if stream else {})}  # fmt: skip

    return DeviceArray()


def test_inputs_already_on_the_gpu_skip_the_upload_and_wait_for_their_stream(engine_file: Path) -> None:
    sim = CudaSim()
    engine = TensorRTEngine(engine_file, _trt=_trt("10.3.0", sim), _cudart=sim)
    rng = np.random.default_rng(2)
    x = rng.random((1, 3, 64, 96), dtype=np.float32)
    out = engine.infer_on_device({"images": _device_input(sim, x)})["output0"]  # written on the default stream (done at once)
    np.testing.assert_allclose(out[0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert "images" not in engine._state().buffers  # nothing uploaded
    assert not sim.waits  # no producer stream named: nothing to wait for
    producer = sim.cudaStreamCreate()[1]
    for i in range(2):  # written on another stream and not synchronized: TensorRT's stream must wait for it
        y = rng.random((1, 3, 64, 96), dtype=np.float32)
        got = engine.infer_on_device({"images": _device_input(sim, y, producer)})["output0"]
        np.testing.assert_allclose(got[0, :3, 0], y.mean(axis=(2, 3))[0], rtol=1e-6)
        assert sim.waits[-1] == (engine._state().stream, engine._state().handoff) and len(sim.waits) == i + 1
    engine.infer_on_device({"images": _device_input(sim, x, engine.stream)})  # already on TensorRT's stream: no wait
    assert len(sim.waits) == 2
    bad = _device_input(sim, x)
    bad.__cuda_array_interface__ = {**bad.__cuda_array_interface__, "typestr": "<f2"}
    with pytest.raises(EngineError, match="on the GPU"):
        engine.infer_on_device({"images": bad})

    class HostArray:  # a host buffer claiming to be on the GPU: the network's read of it fails
        __cuda_array_interface__ = {"shape": x.shape, "typestr": "<f4", "data": (x.ctypes.data - x.ctypes.data % 256 + 256, False), "version": 3}

    with pytest.raises((SimError, EngineError)):
        engine.infer_on_device({"images": HostArray()})
    misaligned = _device_input(sim, np.zeros((1, 3, 32, 49), np.float32))
    misaligned.__cuda_array_interface__ = {**misaligned.__cuda_array_interface__, "shape": x.shape,
                                           "data": (misaligned.__cuda_array_interface__["data"][0] + 4, False)}  # fmt: skip
    with pytest.raises(EngineError, match="refused the address"):  # TensorRT wants 256-byte aligned tensors
        engine.infer_on_device({"images": misaligned})
    engine.close()


def test_in_graph_nms_brings_back_only_the_detections(engine_file: Path) -> None:
    sim = CudaSim()
    engine = TensorRTEngine(engine_file, _trt=_trt("10.3.0", sim, nms=True), _cudart=sim)
    x = np.random.default_rng(3).random((3, 3, 64, 64), dtype=np.float32)
    out = engine.infer({"images": x})
    np.testing.assert_array_equal(out["num_dets"][:, 0], [2, 3, 4])
    assert out["boxes"].shape == (3, 4, 4) and out["scores"].shape == out["classes"].shape == (3, 4)  # the largest count: 4 rows
    np.testing.assert_array_equal(out["boxes"][:, :, 0], [[0] * 4, [1] * 4, [2] * 4])  # each image's own block of rows
    np.testing.assert_array_equal(out["boxes"][:, :, 1], [[0, 1, 2, 3]] * 3)
    np.testing.assert_allclose(out["boxes"][:, 0, 2], x.mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][2], [0, 1, 2, 3])
    np.testing.assert_array_equal(out["scores"][1], [0, 1, 2, 3])
    # one strided copy per row output: 4 rows of 16 bytes from blocks 8 * 16 bytes apart, for 3 images
    assert (16 * 4, 16 * 8, 16 * 4, 3) in sim.copies_2d and (4 * 4, 4 * 8, 4 * 4, 3) in sim.copies_2d
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
    sim = CudaSim()
    engine = TensorRTEngine(engine_file, cuda_graph=True, _trt=_trt("10.3.0", sim), _cudart=sim)
    rng = np.random.default_rng(4)
    frames = [rng.random((1, 3, 64, 64), dtype=np.float32) for _ in range(4)]
    for x in frames:  # 1st: plain enqueue (TensorRT's lazy setup), 2nd: capture + launch, then replays
        np.testing.assert_allclose(engine.infer({"images": x})["output0"][0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert sim.graph_launches == 3 and len(sim.execs) == 1
    assert engine.last_gpu_ms == pytest.approx(2.0)  # the replayed network, timed by the events around the launch
    big = rng.random((2, 3, 64, 64), dtype=np.float32)  # a new shape (and a larger input buffer): plain enqueue, then a new graph
    for _ in range(2):
        np.testing.assert_allclose(engine.infer({"images": big})["output0"][:, :3, 0], big.mean(axis=(2, 3)), rtol=1e-6)
    assert sim.graph_launches == 4 and len(sim.execs) == 1  # the old graph was destroyed
    a, b = _device_input(sim, frames[0]), _device_input(sim, frames[1])
    for arr, x in ((a, frames[0]), (a, frames[0]), (a, frames[0]), (b, frames[1])):  # another address: the old graph would read the old buffer
        np.testing.assert_allclose(engine.infer_on_device({"images": arr})["output0"][0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert sim.graph_launches == 6
    owned = {ptr for buf in engine._state().buffers.values() for ptr in (buf.device, buf.host)}
    engine.close()
    assert not sim.execs and not owned & {b.addr for b in sim.live()}  # graphs and buffers freed


def test_engine_that_cannot_be_captured_falls_back_to_enqueues(engine_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim = CudaSim(fail_capture=True)
    engine = TensorRTEngine(engine_file, cuda_graph=True, _trt=_trt("10.3.0", sim), _cudart=sim)
    x = np.random.default_rng(5).random((1, 3, 64, 64), dtype=np.float32)
    for _ in range(4):
        np.testing.assert_allclose(engine.infer({"images": x})["output0"][0, :3, 0], x.mean(axis=(2, 3))[0], rtol=1e-6)
    assert sim.graph_launches == 0 and not sim.execs and sim.errors_cleared == 1
    assert sum("could not be captured into a CUDA graph" in r.message for r in caplog.records) == 1
    engine.close()


def _built(det_onnx: Path, folder: Path, **options: object) -> Path:
    """An engine of the shipped detector built by the real builder on the fake TensorRT with ``options``."""
    from edgecv.engine.builder import BuildOptions

    folder.mkdir()
    onnx_path = Path(shutil.copy(det_onnx, folder / "det.onnx"))
    build_engine(onnx_path, folder / "det.engine", BuildOptions(**options), trt=fake_trt.make("10.3.0"))  # type: ignore[arg-type]
    manifest = folder / "det.engine.json"
    data = json.loads(manifest.read_text())
    data["engine"] |= {"gpu": "Orin", "compute_capability": "8.7"}
    manifest.write_text(json.dumps(data))
    return folder / "det.engine"


def test_image_size_outside_the_profile_is_refused_at_load(det_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--imgsz against a TensorRT profile: an error with the rebuild command when the model loads, not at the first frame."""
    import edgecv
    from edgecv.engine import trt_compat
    from edgecv.errors import ConfigError

    sim = CudaSim()
    monkeypatch.setattr(trt_compat, "import_tensorrt", lambda: _trt("10.3.0", sim))
    monkeypatch.setattr(trt_compat, "import_cudart", lambda: sim)
    dynamic = _built(det_onnx, tmp_path / "dyn")  # profile 64..256 (a quarter of the size up to it)
    square = _built(det_onnx, tmp_path / "sq", imgsz=(320, 320), square=True, precision="fp16")  # 320,320 only
    frame = np.zeros((480, 640, 3), np.uint8)
    with edgecv.load(dynamic, imgsz=192) as model:  # inside the profile: runs
        assert model.meta.input_size == (192, 192)
        model(frame)
    with pytest.raises(ConfigError, match=r"accepts inputs of 64,64 to 256,256 \(height,width\); --imgsz 320,320 is outside") as err:
        edgecv.load(dynamic, imgsz=320)
    assert "rebuild the engine: edgecv build-engine" in err.value.hint and err.value.hint.endswith("--imgsz 320,320")
    with edgecv.load(square) as model:  # its own size
        assert model.meta.input_size == (320, 320)
        model(frame)
    with pytest.raises(ConfigError, match=r"accepts inputs of 320,320 \(height,width\); --imgsz 256,256") as err:
        edgecv.load(square, imgsz=256)
    assert " --fp16 " in err.value.hint and err.value.hint.endswith("--imgsz 256,256 --square")
    assert not sim.live()  # the refused engines were closed
