"""Mixed-precision FP16: runs on ONNX Runtime CPU, FP32 I/O and tail, outputs and accuracy close to FP32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.transformers.float16")
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgecv  # noqa: E402
from edgecv import assets  # noqa: E402
from edgecv.artifact import ModelMeta  # noqa: E402
from edgecv.bench.accuracy import evaluate  # noqa: E402
from edgecv.data.datasets import open_dataset  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.export.preprocess import add_preprocess  # noqa: E402
from edgecv.graph.fp16 import convert_fp16, tail_nodes  # noqa: E402
from edgecv.graph.onnx_graph import load_onnx, save_onnx  # noqa: E402
from edgecv.vision.letterbox import preprocess  # noqa: E402

NAMES = ("shapes-det", "shapes-seg")


def _meta(model) -> ModelMeta:  # type: ignore[no-untyped-def]
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert meta is not None
    return meta


def _session(model) -> ort.InferenceSession:  # type: ignore[no-untyped-def]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (FP32 path, FP16 path), converted once for the module."""
    out = tmp_path_factory.mktemp("fp16")
    paths = {}
    for name in NAMES:
        fp32 = assets.shipped(name)
        model = load_onnx(fp32)
        fp16_model, _ = convert_fp16(model, _meta(model))
        paths[name] = (fp32, save_onnx(fp16_model, out / f"{name}.fp16.onnx"))
    return paths


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 held-out images (seed 1234, like `edgecv shapes --seed 1234`)."""
    from edgecv.data.synthetic import write_coco_dataset

    return write_coco_dataset(tmp_path_factory.mktemp("heldout"), 60, seed=1234)


@pytest.mark.parametrize("name", NAMES)
def test_fp16_graph_runs_with_float32_io(name: str, converted: dict[str, tuple[Path, Path]]) -> None:
    fp32, fp16 = converted[name]
    model = load_onnx(fp16)
    meta = _meta(model)
    assert meta.precision == "fp16" and meta.extra["fp16"]["kept_fp32_nodes"] > 0
    session = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    for got, want in [(session.get_inputs(), reference.get_inputs()), (session.get_outputs(), reference.get_outputs())]:
        assert [(v.name, v.type, v.shape) for v in got] == [(v.name, v.type, v.shape) for v in want]
        assert all(v.type == "tensor(float)" for v in got)
    floats = [t for t in model.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    halves = sum(t.data_type == TensorProto.FLOAT16 for t in floats)
    assert halves >= 0.9 * len(floats) and halves >= 100  # the weights; only decode constants stay FP32


def test_tail_is_the_decode_and_stays_fp32(converted: dict[str, tuple[Path, Path]]) -> None:
    model = load_onnx(assets.shipped("shapes-det"))
    ops = {n.name: n.op_type for n in model.graph.node}
    tail = tail_nodes(model)
    kinds = {ops[n] for n in tail}
    assert {"Sigmoid", "Softplus", "Concat", "Transpose", "Mul", "Sub", "Div"} <= kinds
    assert not kinds & {"Conv", "Shape"}
    assert sum(ops[n] == "Sigmoid" for n in tail) == 1  # the class scores, not the SiLUs in the backbone

    fp16 = onnx.shape_inference.infer_shapes(load_onnx(converted["shapes-det"][1]))
    types = {v.name: v.type.tensor_type.elem_type for v in list(fp16.graph.value_info) + list(fp16.graph.output)}
    types.update({t.name: t.data_type for t in fp16.graph.initializer})
    for node in fp16.graph.node:
        if node.name in tail:
            assert TensorProto.FLOAT16 not in {types.get(t) for t in [*node.input, *node.output]}, node.name
    assert {"Sigmoid", "Softplus"} <= set(_meta(fp16).extra["fp16"]["kept_fp32_ops"])
    seg_tail = tail_nodes(load_onnx(assets.shipped("shapes-seg")))
    assert "Resize" in {n.op_type for n in load_onnx(assets.shipped("shapes-seg")).graph.node if n.name in seg_tail}


@pytest.mark.parametrize("name", NAMES)
def test_fp16_outputs_close_to_fp32(name: str, converted: dict[str, tuple[Path, Path]], shapes_val: Path) -> None:
    fp32, fp16 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in converted[name])
    meta = _meta(load_onnx(converted[name][0]))
    for sample in open_dataset(shapes_val).samples[:4]:  # aspect ratios vary: dynamic H/W
        x, _ = preprocess(sample.load_image(), meta)
        want, got = (s.run(None, {"images": x})[0] for s in (fp32, fp16))
        assert got.dtype == np.float32 and got.shape == want.shape
        if meta.task == "detect":  # measured: boxes <= 0.015 px, scores <= 2e-3
            confident = want[0, 4:].max(0) > 0.25
            assert np.abs(got - want)[0, :4, confident].max() < 0.5
            assert np.abs(got - want)[0, 4:].max() < 1e-2
        else:  # measured: logits <= 0.015, argmax agrees on > 99.99 % of pixels
            assert np.abs(got - want).max() < 0.1
            assert (got.argmax(1) == want.argmax(1)).mean() > 0.999


@pytest.mark.parametrize("name", NAMES)
def test_fp16_accuracy_within_0_3_points(name: str, converted: dict[str, tuple[Path, Path]], heldout: Path) -> None:
    dataset = open_dataset(heldout)
    scores = []
    for path in converted[name]:
        with edgecv.load(path, conf=0.001, providers="cpu") as model:
            metrics = evaluate(model, dataset)
        scores.append(metrics.map if name == "shapes-det" else metrics.miou)
    assert scores[0] > 0.5
    assert abs(scores[1] - scores[0]) <= 0.003, f"FP32 {scores[0]:.4f} vs FP16 {scores[1]:.4f}"


def test_fp16_after_in_graph_preprocessing() -> None:
    model = load_onnx(assets.shipped("shapes-det"))
    pre, pre_meta = add_preprocess(model, _meta(model))
    both, meta = convert_fp16(pre, pre_meta)
    assert (meta.precision, meta.preprocess_in_graph) == ("fp16", True)
    image = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    u, _ = preprocess(image, meta)
    assert u.dtype == np.uint8
    got = _session(both).run(None, {"images": u})[0]
    want = _session(pre).run(None, {"images": u})[0]
    assert np.abs(got - want)[:, 4:].max() < 1e-2


def _conv_softmax_conv() -> onnx.ModelProto:
    """Conv -> Softmax -> ReduceMean -> Conv: the sensitive ops sit between weighted layers (not in the tail)."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 8, 8])
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["a"], ["b"], name="softmax", axis=1),
        helper.make_node("ReduceMean", ["b", "axes"], ["c"], name="mean", keepdims=1),
        helper.make_node("Conv", ["c", "w2"], ["out"], name="conv2"),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(rng.normal(size=(2, 1, 1, 1)).astype(np.float32), "w2"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_sensitive_ops_stay_fp32_and_options_are_checked() -> None:
    model = _conv_softmax_conv()
    meta = ModelMeta("segment", ("a", "b"), (8, 8), "seg_logits")
    assert tail_nodes(model) == []  # a Conv produces the output
    fp16, new_meta = convert_fp16(model, meta)
    inferred = onnx.shape_inference.infer_shapes(fp16)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    for node in inferred.graph.node:
        if node.op_type in ("Softmax", "ReduceMean"):  # computed in FP32, fed and read through Casts
            assert types[node.input[0]] == types[node.output[0]] == TensorProto.FLOAT
    assert types["c"] == TensorProto.FLOAT16
    if not ort.__version__.startswith("1.18."):  # 1.18 (CI's oldest) names its casts <node>_input_cast_<i>: left as they are
        assert "c_fp32" in types  # tensors named for their precision
    assert {t.name: t.data_type for t in fp16.graph.initializer}["w1"] == TensorProto.FLOAT16
    assert new_meta.extra["fp16"] == {"kept_fp32_ops": ["ReduceMean", "Softmax"], "kept_fp32_nodes": 2}
    x = np.random.default_rng(1).random((1, 3, 8, 8), np.float32)
    np.testing.assert_allclose(
        _session(fp16).run(None, {"images": x})[0], _session(model).run(None, {"images": x})[0], atol=1e-2
    )

    with pytest.raises(ConfigError, match="did you mean 'Softmax'"):
        convert_fp16(model, meta, keep_fp32_ops=["Softmx"])
    with pytest.raises(ConfigError, match="already fp16"):
        convert_fp16(fp16, new_meta)
