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
