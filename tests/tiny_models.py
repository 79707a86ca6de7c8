"""KB-sized ONNX models built on the fly (no torch), each with what a correct backend must return."""

from __future__ import annotations

from pathlib import Path

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def constant_outputs(path: Path, outputs: list[tuple[str, np.ndarray]], size: int = 32, props: dict[str, str] | None = None) -> Path:
    """An ONNX that ignores its image input (``ReduceMean(images) * 0 + constant``) and returns ``outputs``, in order."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0), helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.float32(0), "zero")]
    values = []
    for i, (name, array) in enumerate(outputs):
        nodes.append(helper.make_node("Add", [f"raw{i}", "z"], [name]))
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), f"raw{i}"))
        values.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape)))
    graph = helper.make_graph(nodes, "constant_outputs", [x], values, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def constant_yolo(path: Path, raw: np.ndarray, size: int = 32, props: dict[str, str] | None = None) -> Path:
    """A "detector" whose output is always ``raw`` (1, 4 + nc, A): a foreign YOLOv8-layout ONNX."""
    return constant_outputs(path, [("output0", raw)], size, props)


def yolo_raw(boxes_cxcywh: list[tuple[float, float, float, float]], scores: list[list[float]], anchors: int = 21) -> np.ndarray:
    nc = len(scores[0])
    raw = np.zeros((1, 4 + nc, anchors), np.float32)
    for i, (box, s) in enumerate(zip(boxes_cxcywh, scores)):
        raw[0, :4, i] = box
        raw[0, 4:, i] = s
    return raw


def declared(path: Path, *, input_dims: list | None = None, output_dims: list[list] | None = None) -> Path:
    """Rewrite the declared input/output shapes of ``path`` (ints or symbolic names), as another exporter might."""
    model = onnx.load(str(path))
    if input_dims is not None:
        _set_dims(model.graph.input[0], input_dims)
    for value, dims in zip(model.graph.output, output_dims or []):
        _set_dims(value, dims)
    onnx.save(model, str(path))
    return path


def _set_dims(value, dims: list) -> None:  # type: ignore[no-untyped-def]
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        else:
            dim.dim_param = d


def op_model(path: Path, op: str, input_dims: list, extra_inputs: list[tuple[str, list]] = ()) -> Path:  # type: ignore[assignment]
    """``output = op(images)`` (e.g. a bare Relu): output shape = input shape; extra inputs are declared and added to 0."""
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_dims)]
    nodes = [helper.make_node(op, ["images"], ["y"])]
    last = "y"
    for i, (name, dims) in enumerate(extra_inputs):
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        nodes += [helper.make_node("ReduceSum", [name], [f"s{i}"], keepdims=0), helper.make_node("Mul", [f"s{i}", "zero"], [f"z{i}"])]
        nodes.append(helper.make_node("Add", [last, f"z{i}"], [f"a{i}"]))
        last = f"a{i}"
    nodes.append(helper.make_node("Identity", [last], ["output0"]))
    graph = helper.make_graph(
        nodes, "op_model", inputs, [helper.make_tensor_value_info("output0", TensorProto.FLOAT, input_dims)],
        [numpy_helper.from_array(np.float32(0), "zero")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def binary_map_model(path: Path, size: int | None = 64, *, sigmoid: bool = True, fraction: int = 1) -> Path:
    """A one-channel segmenter: bright pixels are foreground.

    ``map = sigmoid(20 * (mean over RGB - 0.5))`` (or the logit itself without ``sigmoid``),
    average-pooled by ``fraction``; output (1, 1, H / fraction, W / fraction). ``size=None``:
    dynamic height and width.
    """
    hw = [size, size] if size else ["height", "width"]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *hw])
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["m"], keepdims=1),
        helper.make_node("Sub", ["m", "half"], ["c"]),
        helper.make_node("Mul", ["c", "gain"], ["logit"]),
    ]
    last = "logit"
    if fraction > 1:
        nodes.append(helper.make_node("AveragePool", [last], ["pooled"], kernel_shape=[fraction, fraction], strides=[fraction, fraction]))
        last = "pooled"
    nodes.append(helper.make_node("Sigmoid" if sigmoid else "Identity", [last], ["mask"]))
    out_hw = [size // fraction, size // fraction] if size else (["height", "width"] if fraction == 1 else ["h4", "w4"])
    graph = helper.make_graph(
        nodes, "binary_map", [x], [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, *out_hw])],
        [numpy_helper.from_array(np.array([1], np.int64), "axes"), numpy_helper.from_array(np.float32(0.5), "half"),
         numpy_helper.from_array(np.float32(20), "gain")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path
