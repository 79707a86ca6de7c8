"""KB-sized ONNX models built on the fly (no torch), each with what a correct backend must return."""

from __future__ import annotations

from pathlib import Path

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def constant_yolo(path: Path, raw: np.ndarray, size: int = 32, props: dict[str, str] | None = None) -> Path:
    """A "detector" whose output is always ``raw`` (1, 4 + nc, A): a foreign YOLOv8-layout ONNX."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(raw.astype(np.float32), "raw"), numpy_helper.from_array(np.float32(0), "zero")]
    graph = helper.make_graph(nodes, "constant_yolo", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def yolo_raw(boxes_cxcywh: list[tuple[float, float, float, float]], scores: list[list[float]], anchors: int = 20) -> np.ndarray:
    nc = len(scores[0])
    raw = np.zeros((1, 4 + nc, anchors), np.float32)
    for i, (box, s) in enumerate(zip(boxes_cxcywh, scores)):
        raw[0, :4, i] = box
        raw[0, 4:, i] = s
    return raw
