"""TensorRT on a real GPU: engines from the shipped models against ONNX Runtime, and the GPU run path.

Skipped without a GPU and TensorRT. What they check:

- FP32 engine: outputs near-exact to ONNX Runtime (TF32 may round), mAP the same to 0.5 point;
- FP16 engine (built from the FP32 graph: converted on the fly): mAP within 1 point;
- INT8 engine from `edgecv calibrate`'s Q/DQ graph: mAP within the calibrate report's drop + 1;
- in-graph NMS engine through ``edgecv.load``: CUDA preprocessing, detection-only copies and a
  CUDA graph give the ONNX Runtime detections;
- timing: enqueue-only (CUDA events) vs end to end, printed (performance is measured, not asserted).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, det_onnx: Path) -> Path:
    from edgecv.data.synthetic import write_coco_dataset

    root = tmp_path_factory.mktemp("trt")
    shutil.copy(det_onnx, root / "det.onnx")
    write_coco_dataset(root / "val", 100, seed=1234)
    write_coco_dataset(root / "calib", 128, seed=99)
    return root


def _map(model_path: Path, data: Path) -> float:
    import edgecv
    from edgecv.bench.accuracy import evaluate
    from edgecv.data.datasets import open_dataset

    with edgecv.load(model_path, conf=0.001, iou=0.6) as model:
        return evaluate(model, open_dataset(data)).to_dict()["map"] * 100


def test_fp32_fp16_int8_engines_against_onnxruntime(workdir: Path) -> None:
    import edgecv
    from edgecv.bench.latency import synthetic_frames
    from edgecv.engine.builder import BuildOptions, build_engine
    from edgecv.quant.calibrate import CalibrateOptions, calibrate

    onnx_path = workdir / "det.onnx"
    fp32 = build_engine(onnx_path, workdir / "det.fp32.engine").path
    fp16 = build_engine(onnx_path, workdir / "det.fp16.engine", BuildOptions(precision="fp16")).path
    report = calibrate(onnx_path, workdir / "calib" / "images", CalibrateOptions(num=128, val=workdir / "val", bench_iterations=5))
    int8 = build_engine(report.targets[0].path, workdir / "det.int8.engine", BuildOptions(precision="int8")).path

    with edgecv.load(onnx_path) as ort_model, edgecv.load(fp32) as trt_model:
        trt_model.gpu_preprocess = False  # the same host tensor into both
        for frame in synthetic_frames(4):
            feeds, _ = ort_model.preprocess(frame)
            np.testing.assert_allclose(trt_model.infer(feeds)["output0"], ort_model.infer(feeds)["output0"], atol=1e-2, rtol=1e-3)

    val = workdir / "val"
    scores = {name: _map(path, val) for name, path in (("ort", onnx_path), ("fp32", fp32), ("fp16", fp16), ("int8", int8))}
    print(json.dumps({"map": scores, "calibrate_int8": report.targets[0].score}))
    assert abs(scores["fp32"] - scores["ort"]) < 0.5
    assert abs(scores["fp16"] - scores["ort"]) < 1.0
    reported_drop = report.fp32_score - report.targets[0].score
    assert scores["ort"] - scores["int8"] < reported_drop + 1.0


def test_nms_engine_runs_the_gpu_path_and_matches_onnxruntime(workdir: Path) -> None:
    import edgecv
    from edgecv.bench.latency import synthetic_frames
    from edgecv.engine.builder import build_engine
    from edgecv.export.convert import NmsOptions, convert_onnx

    nms_onnx = workdir / "det.nms.onnx"
    convert_onnx(workdir / "det.onnx", nms_onnx, nms=NmsOptions(max_det=100))
    engine = build_engine(nms_onnx, workdir / "det.nms.engine").path
    frames = synthetic_frames(8)
    with edgecv.load(nms_onnx) as ort_model, edgecv.load(engine, cuda_graph=True) as trt_model:
        assert trt_model.gpu_preprocess  # numba is installed with edgecv[tensorrt]
        for frame in frames + frames:  # the second pass replays the CUDA graph (if TensorRT could capture it)
            got, want = trt_model(frame), ort_model(frame)
            assert len(got) == len(want) and np.array_equal(got.class_ids, want.class_ids)
            if len(got):
                assert np.abs(got.xyxy - want.xyxy).max() < 2.0  # the kernel's letterbox is within 1/255 of OpenCV's
        outputs = trt_model.infer(trt_model.preprocess(frames[0])[0])
        assert outputs["boxes"].shape[1] == int(outputs["num_dets"].max())  # only the detections came back


def test_enqueue_only_vs_end_to_end_timing(workdir: Path) -> None:
    """Prints the GPU time of the network (CUDA events) against the whole call and the whole frame, measured by `edgecv bench`'s loop."""
    from edgecv.bench.latency import BenchConfig, benchmark, synthetic_frames
    from edgecv.engine.builder import BuildOptions, build_engine

    engine = workdir / "det.fp16.engine"
    if not engine.is_file():
        engine = build_engine(workdir / "det.onnx", engine, BuildOptions(precision="fp16")).path
    frames = synthetic_frames(16)
    rows = {}
    for graph in (False, True):
        record = benchmark([str(engine)], BenchConfig(warmup=16, iterations=200, cuda_graph=graph), frames).results[0]  # warm-up includes the capture
        assert record.ok, record.error
        rows[f"cuda_graph={graph}"] = {k: round(record.stages[stage].p50, 3) for k, stage in (("enqueue_gpu_ms", "gpu"), ("infer_ms", "infer"), ("e2e_ms", "e2e"))}
    print(json.dumps(rows))
    for row in rows.values():
        assert 0 < row["enqueue_gpu_ms"] <= row["infer_ms"] <= row["e2e_ms"]
