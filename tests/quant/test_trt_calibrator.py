"""The TensorRT 10 entropy calibrator: batching and cache I/O on the CPU, the real thing on a GPU."""

from __future__ import annotations

from pathlib import Path

import fake_trt
import numpy as np
import pytest
from cuda_sim import CudaSim

from edgecv.engine.trt_cache import format_cache, read_cache
from edgecv.engine.trt_calibrator import CalibrationBatches, make_entropy_calibrator
from edgecv.errors import ArtifactError, DatasetError, EngineError


def _inputs(n: int, shape: tuple[int, ...] = (3, 4, 5)) -> list[np.ndarray]:
    return [np.full((1, *shape), i, np.float32) for i in range(n)]


def test_batches_are_full_contiguous_and_in_order() -> None:
    batches = CalibrationBatches(_inputs(7), batch_size=3, shape=(3, 4, 5))
    out = list(batches)
    assert len(out) == 2 and batches.dropped == 1 and batches.nbytes == 3 * 60 * 4
    assert all(b.flags.c_contiguous and b.dtype == np.float32 for b in out)
    assert [b[:, 0, 0, 0].tolist() for b in out] == [[0, 1, 2], [3, 4, 5]]


def test_batches_refuse_mixed_shapes() -> None:
    with pytest.raises(DatasetError, match="one shape"):
        list(CalibrationBatches([np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 3, 4, 6), np.float32)], 1, (3, 4, 5)))


def test_calibrator_copies_batches_and_uses_the_cache(tmp_path: Path) -> None:
    cudart = CudaSim()
    cache = tmp_path / "m.calib"
    calibrator = make_entropy_calibrator(CalibrationBatches(_inputs(4), 2, (3, 4, 5)), cache, trt=fake_trt.make("10.3.0"), cudart=cudart)
    assert calibrator.get_batch_size() == 2 and calibrator.read_calibration_cache() is None
    (ptr,) = calibrator.get_batch(["images"])
    assert np.frombuffer(cudart.peek(ptr, 2 * 60 * 4), np.float32).reshape(2, 3, 4, 5)[1, 0, 0, 0] == 1  # in device memory
    calibrator.get_batch(["images"])
    assert calibrator.get_batch(["images"]) is None and calibrator.batches_done == 2
    calibrator.write_calibration_cache(memoryview(format_cache({"images": 1.0}).encode()))
    assert read_cache(cache).scales == pytest.approx({"images": 1 / 127})
    assert calibrator.read_calibration_cache() == cache.read_bytes()
    # a cache is checked when the calibrator is made: TensorRT would swallow an error raised in its callbacks
    with pytest.raises(ArtifactError, match=r"not in the model \(e.g. 'images'\)"):
        make_entropy_calibrator(CalibrationBatches([], 1, (3, 4, 5)), cache, tensor_names={"input"}, trt=fake_trt.make("10.3.0"), cudart=cudart)
    calibrator.free()
    assert not cudart.live()
    cache.write_text("garbage")
    with pytest.raises(Exception, match="not a TensorRT calibration cache"):
        make_entropy_calibrator(CalibrationBatches([], 1, (3, 4, 5)), cache, trt=fake_trt.make("10.3.0"), cudart=cudart)


def test_calibrator_keeps_errors_that_tensorrt_would_swallow(tmp_path: Path) -> None:
    class NoMemory(CudaSim):
        def cudaMalloc(self, size: int) -> tuple[int, int]:  # noqa: N802
            return 2, 0  # cudaErrorMemoryAllocation

    calibrator = make_entropy_calibrator(CalibrationBatches(_inputs(2), 1, (3, 4, 5)), tmp_path / "m.calib", trt=fake_trt.make("10.3.0"), cudart=NoMemory())
    assert calibrator.get_batch(["images"]) is None  # what TensorRT sees: no more data
    assert isinstance(calibrator.error, EngineError) and "cudaMalloc" in calibrator.error.message
    (tmp_path / "m.calib").write_text("garbage")  # replaced between the check and TensorRT's read
    assert calibrator.read_calibration_cache() is None and calibrator.error.message.startswith("CUDA cudaMalloc")  # the first error is kept


def test_tensorrt_11_has_no_implicit_calibration(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="removed in TensorRT 11"):
        make_entropy_calibrator(CalibrationBatches([], 1, (3, 4, 5)), tmp_path / "c", trt=fake_trt.make("11.1.0"), cudart=CudaSim())


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_int8_graph_and_cache_build_on_tensorrt(det_onnx: Path, shapes_val: Path, tmp_path: Path) -> None:
    """On a GPU: the Q/DQ graph builds (explicit INT8), and on TensorRT 10 the calibrator builds from the FP32 graph."""
    import shutil

    import tensorrt as trt

    from edgecv.engine import trt_compat
    from edgecv.export.convert import read_meta
    from edgecv.quant import calib_data
    from edgecv.quant.calibrate import CalibrateOptions, calibrate

    model = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    report = calibrate(model, shapes_val, CalibrateOptions(num=16, holdout=0, bench_iterations=0))

    def build(onnx_path: Path, configure) -> bytes | None:  # type: ignore[no-untyped-def]
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i).desc() for i in range(parser.num_errors)]
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        profile.set_shape(name, (1, 3, 256, 256), (1, 3, 256, 256), (1, 3, 256, 256))
        config.add_optimization_profile(profile)
        configure(config, profile)
        return builder.build_serialized_network(network, config)

    assert build(report.targets[0].path, lambda config, profile: None) is not None
    if trt_compat.has_implicit_int8(trt):
        meta = read_meta(model).replace(dynamic=False, input_size=(256, 256))
        images = calib_data.gather(shapes_val, num=16, holdout=0)
        batches = CalibrationBatches(calib_data.tensors(images.calibration, meta), 4, (3, 256, 256))
        calibrator = make_entropy_calibrator(batches, tmp_path / "trt.calib")

        def implicit(config, profile):  # type: ignore[no-untyped-def]
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            config.set_calibration_profile(profile)

        assert build(model, implicit) is not None
        assert read_cache(tmp_path / "trt.calib").scales
