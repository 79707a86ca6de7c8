"""Artifacts for the deploy tests: every kind edgecv writes, each made once per session (KB to MB, no downloads)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, det_onnx: Path, seg_onnx: Path) -> dict[str, Path]:
    """name -> model file: det (yolov8 layout), det_nms (in-graph NMS), seg, det_fp16, det_int8 (Q/DQ),
    static (fixed batch 1, foreign), and engines built by the fake TensorRT (fp32 on 10, fp16 on 11, int8 from a cache on 10)."""
    pytest.importorskip("onnx")
    import fake_trt
    from tiny_models import constant_yolo, yolo_raw

    from edgecv.engine.builder import BuildOptions, build_engine
    from edgecv.engine.trt_cache import write_cache
    from edgecv.export.convert import NmsOptions, convert_onnx, read_meta
    from edgecv.graph.onnx_graph import load_onnx, save_onnx, set_metadata
    from edgecv.quant import qdq
    from edgecv.quant.collect import collect_stats

    out = tmp_path_factory.mktemp("artifacts")
    paths = {"det": Path(shutil.copy(det_onnx, out / "det.onnx")), "seg": Path(shutil.copy(seg_onnx, out / "seg.onnx"))}
    paths["det_nms"] = out / "det_nms.onnx"
    convert_onnx(paths["det"], paths["det_nms"], nms=NmsOptions(iou=0.45, conf=0.25, max_det=50))
    paths["det_fp16"] = out / "det.fp16.onnx"
    convert_onnx(paths["det"], paths["det_fp16"], fp16=True)
    # a Q/DQ graph as calibrate writes it (ranges from two random images: the graph's form is what matters here)
    model = load_onnx(paths["det"])
    prepared = qdq.prepare(model)
    rng = np.random.default_rng(0)
    stats, _ = collect_stats(prepared, [rng.random((1, 3, 256, 256), np.float32) for _ in range(2)])
    ranges = qdq.tensor_ranges(stats, qdq.amaxes(stats, "minmax"), symmetric=True)
    quantized, _ = qdq.quantize(prepared, ranges, target="tensorrt")
    paths["det_int8"] = out / "det.int8.onnx"
    save_onnx(set_metadata(quantized, read_meta(paths["det"]).replace(precision="int8")), paths["det_int8"])
    paths["static"] = constant_yolo(out / "static.onnx", yolo_raw([(10, 10, 8, 8)], [[0.9, 0.1]]), size=32)
    # engines: the fake TensorRT writes a fake plan and the real manifest (edgecv/engine/manifest.py format)
    paths["engine"] = build_engine(paths["det"], out / "det.engine", BuildOptions(batch=(1, 4, 8)), trt=fake_trt.make("10.3.0")).path
    paths["engine_fp16"] = build_engine(paths["det"], out / "det_fp16.engine", BuildOptions(precision="fp16"), trt=fake_trt.make("11.1.0")).path
    cache = write_cache(out / "det.calib", {"images": 1.0})
    paths["engine_int8"] = build_engine(paths["det"], out / "det.int8.engine", BuildOptions(precision="int8", calib_cache=cache), trt=fake_trt.make("10.3.0")).path
    # INT8 from the Q/DQ graph (how TensorRT 11 takes INT8)
    paths["engine_qdq"] = build_engine(paths["det_int8"], out / "det_qdq.engine", BuildOptions(precision="int8"), trt=fake_trt.make("11.1.0")).path
    paths["engine_nms"] = build_engine(paths["det_nms"], out / "det_nms.engine", trt=fake_trt.make("10.3.0")).path
    return paths
