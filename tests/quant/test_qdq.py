"""Q/DQ placement for TensorRT and for ONNX Runtime's CPU kernels, on the shipped models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgecv.artifact import ModelMeta  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.graph.fp16 import tail_nodes  # noqa: E402
from edgecv.quant import calib_data, qdq  # noqa: E402
from edgecv.quant.calibrate import cache_tensors  # noqa: E402
from edgecv.quant.collect import collect_stats  # noqa: E402


@pytest.fixture(scope="module")
def calibrated(det_onnx: Path, shapes_val: Path) -> tuple[Any, Any, list[np.ndarray]]:
    model = onnx.load(str(det_onnx))
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    prepared = qdq.prepare(model)
    images = calib_data.gather(shapes_val, num=20, holdout=4)
    stats, seen = collect_stats(prepared, calib_data.tensors(images.calibration, meta))
    assert seen == 20
    held = list(calib_data.tensors(images.holdout, meta))
    return prepared, stats, held


def _producers(model: Any) -> dict[str, Any]:
    return {out: node for node in model.graph.node for out in node.output}


def _int8_readers(model: Any) -> dict[str, str]:
    """node name -> op type, for nodes that read a DequantizeLinear output."""
    prod = _producers(model)
    return {
        n.name: n.op_type
        for n in model.graph.node
        if n.op_type not in qdq.QDQ_OPS and any(i in prod and prod[i].op_type == "DequantizeLinear" for i in n.input)
    }


def _run(model: Any, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _score_error(q: np.ndarray, f: np.ndarray) -> float:
    """Mean abs error of the class scores (0..1) of a YOLOv8 output, where FP32 sees something (> 0.1)."""
    seen = f[:, 4:] > 0.1
    return float(np.abs(q[:, 4:] - f[:, 4:])[seen].mean())


def test_tensorrt_graph_quantizes_only_weighted_layer_inputs(calibrated: tuple) -> None:
    prepared, stats, held = calibrated
    amax = qdq.amaxes(stats, "percentile")
    model, quantized = qdq.quantize(prepared, qdq.tensor_ranges(stats, amax, symmetric=True), target="tensorrt")
    onnx.checker.check_model(model)
    readers = _int8_readers(model)
    assert set(readers.values()) == {"Conv"} and len(readers) == len(quantized) == 58
    tail = set(tail_nodes(prepared))
    assert not tail & set(readers)
    inits = {t.name: t for t in model.graph.initializer}
    for node in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        zero_point = onnx.numpy_helper.to_array(inits[node.input[2]])
        assert zero_point.dtype == np.int8 and not zero_point.any()  # symmetric INT8 activations
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    prod = _producers(model)
    weight_dq = prod[conv.input[1]]
    assert weight_dq.op_type == "DequantizeLinear" and inits[weight_dq.input[0]].data_type == onnx.TensorProto.INT8
    assert onnx.numpy_helper.to_array(inits[weight_dq.input[1]]).size > 1  # per-channel scales
    assert len(conv.input) < 3 or conv.input[2] in inits and inits[conv.input[2]].data_type == onnx.TensorProto.FLOAT  # float bias
    fp32 = _run(prepared, held[0])
    assert _score_error(_run(model, held[0]), fp32) < 0.1


def test_cpu_graph_is_uint8_and_keeps_the_tail_float(calibrated: tuple) -> None:
    prepared, stats, held = calibrated
    amax = qdq.amaxes(stats, "minmax")
    ranges = qdq.tensor_ranges(stats, amax, symmetric=False)
    model, _ = qdq.quantize(prepared, ranges, target="cpu")
    readers = _int8_readers(model)
    assert {"Conv", "Mul", "Sigmoid", "Concat"} <= set(readers.values())
    assert not set(tail_nodes(prepared)) & set(readers)
    inits = {t.name: t for t in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    assert inits[q.input[2]].data_type == onnx.TensorProto.UINT8
    fp32 = _run(prepared, held[0])
    error = _score_error(_run(model, held[0]), fp32)
    assert error < 0.1
    # quantizing the tail puts box pixels and 0-1 scores under one UINT8 scale: the scores are gone
    crushed, _ = qdq.quantize(prepared, ranges, target="cpu", keep_tail=False)
    crushed_error = _score_error(_run(crushed, held[0]), fp32)
    if ort.__version__.startswith("1.18."):  # CI's oldest: its QDQ Concat handling does not share one scale here
        assert crushed_error > error
    else:
        assert crushed_error > 0.15 and crushed_error > 3 * error


def test_kept_float_nodes_read_float_inputs(calibrated: tuple) -> None:
    prepared, stats, _ = calibrated
    place = qdq.placement(prepared, "tensorrt")
    label, nodes = next(iter(place.layers.items()))
    assert label == "stem.0.conv" and len(nodes) == 1  # layers are named after their weights
    ranges = qdq.tensor_ranges(stats, qdq.amaxes(stats, "minmax"), symmetric=True)
    model, quantized = qdq.quantize(prepared, ranges, target="tensorrt", keep_float=nodes)
    assert nodes[0] not in quantized and nodes[0] not in _int8_readers(model)
    kept = next(n for n in model.graph.node if n.name == nodes[0])
    assert kept.input[1] in {t.name for t in model.graph.initializer}  # its float weight, not a DQ
    assert qdq.kept_float_layers(place, nodes) == [label]


def test_refuses_quantized_and_fp16_models(calibrated: tuple) -> None:
    prepared, stats, _ = calibrated
    ranges = qdq.tensor_ranges(stats, qdq.amaxes(stats, "minmax"), symmetric=True)
    model, _ = qdq.quantize(prepared, ranges)
    with pytest.raises(ConfigError, match="already has .* quantization nodes"):
        qdq.check_float_model(model, "fp32")
    with pytest.raises(ConfigError, match="fp16"):
        qdq.check_float_model(prepared, "fp16")


def test_cache_covers_the_network_but_not_what_stays_float(calibrated: tuple) -> None:
    prepared, stats, _ = calibrated
    amax = qdq.amaxes(stats, "entropy")
    entries = cache_tensors(prepared, amax, set(), keep_tail=True)
    from edgecv.graph.onnx_graph import tensor_names

    assert set(entries) <= tensor_names(prepared.graph)
    assert "images" in entries and entries["images"] == pytest.approx(1.0, abs=0.01)
    assert "output0" not in entries
    tail_outputs = {o for n in prepared.graph.node if n.name in set(tail_nodes(prepared)) for o in n.output}
    assert not tail_outputs & set(entries)
    conv = next(n for n in prepared.graph.node if n.op_type == "Conv")
    assert conv.output[0] in entries
    assert conv.output[0] not in cache_tensors(prepared, amax, {conv.name}, keep_tail=True)
