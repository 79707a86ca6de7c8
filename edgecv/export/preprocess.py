"""Move image preprocessing into the graph: the model then takes the letterboxed BGR uint8 frame.

    (B, H, W, 3) uint8 BGR ── Cast(float32) ── Gather(channels [2, 1, 0])   only when meta.color == "RGB"
        ── Mul(1/255) ── Sub(mean) ── Div(std)                             mean/std only when not 0 / 1
        ── Transpose(0, 3, 1, 2) ──▶ (B, 3, H, W) float32 ──▶ the original graph

The host then only letterboxes (:func:`edgecv.vision.letterbox.preprocess` feeds
``(1, h, w, 3)`` uint8 when ``meta.preprocess_in_graph``), and the same ONNX does the
rest on ONNX Runtime and TensorRT alike (DESIGN principle 2). The uint8 input is
cast first because TensorRT accepts a UINT8 network input only when a Cast consumes
it; the arithmetic then runs in float32 (or FP16 after ``convert_fp16``), matching
the host path to float rounding (max abs diff ~1e-7 on the input tensor).

The graph input keeps its name (``images``) and its batch/height/width dims
(symbolic when the model is dynamic); the original graph now reads the tensor
``<name>_nchw`` that the preprocessing produces.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.artifact import ModelMeta
from edgecv.errors import ExportError
from edgecv.graph.onnx_graph import dim_value, tensor_names

log = logging.getLogger(__name__)


def add_preprocess(model: Any, meta: ModelMeta) -> tuple[Any, ModelMeta]:
    """Prepend color flip, scaling, normalization and NCHW transpose to ``model``.

    Args:
        model: ``onnx.ModelProto`` with one image input (B, 3, H, W) float32, in ``meta.color``
            order, scaled to [0, 1] then normalized with ``meta.mean``/``meta.std``.
        meta: the model's metadata (color, mean, std).

    Returns:
        A new ``onnx.ModelProto`` (``model`` is not modified) whose input of the same name is
        (B, H, W, 3) uint8 BGR, with its metadata set, and the updated metadata
        (``preprocess_in_graph=True, dtype="uint8", layout="NHWC"``).

    Raises:
        ExportError: the model already preprocesses in the graph, or its input is not one
            4-D float32 NCHW tensor with 3 channels.
    """
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edgecv.graph.onnx_graph import set_metadata

    if meta.preprocess_in_graph:
        raise ExportError(
            "the model already does its preprocessing in the graph (metadata preprocess_in_graph=true)",
            hint="add it once: use the original float-input model, or this one as it is",
        )
    image = _image_input(model, meta)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    name = image.name
    taken = tensor_names(graph)
    inner = _unique(f"{name}_nchw", taken)
    _rename_uses(graph, name, inner)

    dims = image.type.tensor_type.shape.dim
    new_input = helper.make_tensor_value_info(name, TensorProto.UINT8, [dim_value(dims[0]), dim_value(dims[2]), dim_value(dims[3]), 3])
    for i, value in enumerate(graph.input):
        if value.name == name:
            graph.input[i].CopyFrom(new_input)

    nodes, inits = [], []
    prefix = f"{name}_pre"
    while any(t.startswith(prefix) for t in taken):
        prefix += "_"

    def step(op: str, inputs: list[str], **attrs: Any) -> str:
        output = f"{prefix}_{len(nodes)}_{op.lower()}"
        nodes.append(helper.make_node(op, inputs, [output], name=f"{prefix}/{op}_{len(nodes)}", **attrs))
        return output

    def const(label: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, f"{prefix}_{label}"))
        return inits[-1].name

    x = step("Cast", [name], to=TensorProto.FLOAT)
    if meta.color == "RGB":
        x = step("Gather", [x, const("bgr_to_rgb", np.array([2, 1, 0], np.int64))], axis=3)
    x = step("Mul", [x, const("scale", np.array(1 / 255, np.float32))])
    if any(meta.mean):
        x = step("Sub", [x, const("mean", np.asarray(meta.mean, np.float32).reshape(1, 1, 1, 3))])
    if any(s != 1 for s in meta.std):
        x = step("Div", [x, const("std", np.asarray(meta.std, np.float32).reshape(1, 1, 1, 3))])
    step("Transpose", [x], perm=[0, 3, 1, 2])
    nodes[-1].output[0] = inner

    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    graph.initializer.extend(inits)
    new_meta = meta.replace(preprocess_in_graph=True, dtype="uint8", layout="NHWC")
    set_metadata(out, new_meta)
    log.debug("added in-graph preprocessing to input %r: %s", name, " -> ".join(n.op_type for n in nodes))
    return out, new_meta


def _image_input(model: Any, meta: ModelMeta) -> Any:
    """The single non-initializer graph input, checked to be (B, 3, H, W) float32."""
    from onnx import TensorProto

    inits = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    fix = "add_preprocess needs the float NCHW image model that `edgecv export` writes"
    if len(inputs) != 1:
        raise ExportError(
            f"expected one image input, the graph has {len(inputs)}: {[v.name for v in inputs]}", hint=fix
        )
    value = inputs[0]
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    if tensor.elem_type != TensorProto.FLOAT or len(dims) != 4 or dims[1] != 3 or meta.layout != "NCHW":
        dtype = TensorProto.DataType.Name(tensor.elem_type).lower()
        raise ExportError(
            f"input {value.name!r} is {dtype} {dims} (metadata layout {meta.layout}); expected float (B, 3, H, W)",
            hint=fix,
        )
    return value


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _rename_uses(graph: Any, old: str, new: str) -> None:
    """Point every node that reads ``old`` (also inside If/Loop/Scan bodies) at ``new``.

    A subgraph that declares its own ``old`` (an input or a node output) shadows the
    outer one, so the walk stops there. A graph output that is the input itself
    (a pass-through) becomes an Identity of ``new``.
    """
    from onnx import helper

    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                shadowed = any(v.name == old for v in sub.input) or any(old in n.output for n in sub.node)
                if not shadowed:
                    _rename_uses(sub, old, new)
    for value in graph.value_info:
        if value.name == old:
            value.name = new
    for value in graph.output:
        if value.name == old:
            graph.node.append(helper.make_node("Identity", [new], [old + "_out"], name=f"{old}/passthrough"))
            value.name = old + "_out"
