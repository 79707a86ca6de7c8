"""Mixed-precision FP16 ONNX: weights and compute in FP16, I/O and sensitive ops in FP32.

TensorRT 11 builds strongly typed networks, so FP16 has to be in the ONNX itself
(DESIGN principle 5); the same file runs on ONNX Runtime. What stays FP32, and why:

- **Graph inputs and outputs** (``keep_io_types``): callers feed and read float32 as
  with the FP32 model (a Cast follows the input and precedes each output).
- **The output tail** (:func:`tail_nodes`): the nodes after the last Conv/MatMul. In a
  YOLOv8-layout detector that is the box decode (Softplus/DFL, anchor grid, ``* stride``,
  xyxy -> cxcywh, Concat, Transpose) and the class Sigmoid: coordinates reach 640+ px,
  where FP16's spacing is 0.5 px. The head Convs run in FP16 and their small logits are
  cast to FP32 once. In a segmenter the tail is the final logit upsampling.
- **Ops in** :data:`DEFAULT_KEEP`: NMS/TopK (score ties, indices), reductions and
  Softmax/LogSoftmax/Pow/LayerNormalization (sums and squares of many FP16 terms
  overflow at 65504 or drop small terms), plus ONNX Runtime's own
  ``float16.DEFAULT_OP_BLOCK_LIST`` (ML-domain ops, Range, CumSum, Min, Max, Upsample).
- **Not kept: Resize** outside the tail. Nearest copies values (exact in FP16), linear is
  a convex combination (no overflow); TensorRT runs IResizeLayer in FP16. Its ``scales``
  input stays float32, as the operator requires.

The converter rounds through FP16 between two FP32 nodes (a Cast pair per edge);
:func:`convert_fp16` removes those pairs, so the tail really is FP32.

On a CPU, ONNX Runtime has no FP16 Conv on x86: it casts the FP16 weights to FP32 once
and keeps activations FP32 between ops without FP16 kernels, so latency matches FP32 and
the CPU run shows the weight rounding but not every activation rounding a GPU does. An
emulation that rounds every FP16-region tensor (measured on the shipped models) gives
2-3x the CPU output error and still < 1e-4 mAP/mIoU change (60 images).
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from edgecv._optional import require
from edgecv.artifact import ModelMeta
from edgecv.errors import ConfigError, ExportError
from edgecv.graph.onnx_graph import name_nodes, toposort

log = logging.getLogger(__name__)

DEFAULT_KEEP: tuple[str, ...] = (
    "NonMaxSuppression", "TopK", "RoiAlign",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    "Softmax", "LogSoftmax", "Pow", "LayerNormalization",
)  # fmt: skip
# Layers that end the tail walk: the weighted layers whose FP16 speed is the point of FP16.
HEAVY_OPS = frozenset(
    {"Conv", "ConvTranspose", "MatMul", "Gemm", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul"}
)
# Ops whose output depends only on their input's shape: the walk does not continue through their input.
_SHAPE_ONLY = frozenset({"Shape", "Size"})


def tail_nodes(model: Any) -> list[str]:
    """Names of the nodes between the last weighted layers and the graph outputs.

    Walks back from every graph output through producers, stopping at
    :data:`HEAVY_OPS` (Conv, MatMul, Gemm, ...; not included) and at graph inputs and
    initializers. The walk does not follow a ``Shape``/``Size`` node's input (only its
    shape is used), and those nodes are not listed: they read FP16 as well as FP32, and
    keeping one would cast a whole feature map to FP32 just to read its shape.
    Subgraphs are not entered.

    Args:
        model: ``onnx.ModelProto``. Nodes without a name cannot be listed;
            :func:`convert_fp16` names them first.

    Returns:
        Node names in graph order.
    """
    nodes = list(model.graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    stack = [value.name for value in model.graph.output]
    seen: set[int] = set()
    while stack:
        i = producer.get(stack.pop(), -1)
        if i < 0 or i in seen or nodes[i].op_type in HEAVY_OPS:
            continue
        seen.add(i)
        if nodes[i].op_type not in _SHAPE_ONLY:
            stack.extend(name for name in nodes[i].input if name)
    return [nodes[i].name for i in sorted(seen) if nodes[i].name and nodes[i].op_type not in _SHAPE_ONLY]


def convert_fp16(
    model: Any,
    meta: ModelMeta,
    *,
    keep_fp32_ops: Sequence[str] = DEFAULT_KEEP,
    keep_tail: bool = True,
) -> tuple[Any, ModelMeta]:
    """Mixed-precision FP16 copy of ``model`` (FP32 I/O, FP32 tail and sensitive ops).

    Args:
        model: ``onnx.ModelProto``, float32 (not modified).
        meta: its metadata; ``precision`` must be ``"fp32"``.
        keep_fp32_ops: op types computed in FP32 wherever they occur (see the module doc),
            in addition to ONNX Runtime's ``DEFAULT_OP_BLOCK_LIST``.
        keep_tail: also keep :func:`tail_nodes` (the decode after the heads) in FP32.

    Returns:
        The FP16 ``onnx.ModelProto``, with metadata set and topologically sorted, and the
        metadata with ``precision="fp16"`` and ``extra["fp16"] = {"kept_fp32_ops": op types
        computed in FP32, "kept_fp32_nodes": their count}``. Inputs and outputs keep their
        names, shapes and float32 dtype.

    Raises:
        ConfigError: the model is not FP32, or ``keep_fp32_ops`` names an unknown operator.
        ExportError: the converted graph does not pass the ONNX checker.
    """
    onnx = require("onnx")
    from edgecv.graph import ort_compat

    if meta.precision != "fp32":
        raise ConfigError(
            f"the model is already {meta.precision}; FP16 conversion needs the FP32 model",
            hint="convert the FP32 ONNX that `edgecv export` wrote",
        )
    _check_op_names(onnx, keep_fp32_ops)
    work = onnx.ModelProto()
    work.CopyFrom(model)
    name_nodes(work.graph)
    op_block = sorted(set(keep_fp32_ops) | set(ort_compat.float16_block_list()))
    tail = tail_nodes(work) if keep_tail else []
    kept_names = set(tail) | {n.name for n in work.graph.node if n.op_type in op_block}
    converted = ort_compat.convert_float_to_float16(work, keep_io_types=True, op_block_list=op_block, node_block_list=tail)
    removed = _drop_cast_pairs(converted.graph)
    toposort(converted.graph)
    del converted.graph.value_info[:]  # stale after the renames; inferred again
    try:
        converted = onnx.shape_inference.infer_shapes(converted)
        onnx.checker.check_model(converted)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise ExportError(
            f"the FP16 graph is not valid ONNX: {exc}", hint="keep the offending op in FP32 with keep_fp32_ops"
        ) from exc

    from edgecv.graph.onnx_graph import set_metadata

    # Report the kept nodes that touch floats (not the int64 shape arithmetic that sits in the tail too).
    graph = converted.graph
    values = [*graph.input, *graph.value_info, *graph.output]
    floats = {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    floats |= {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    kept = [n for n in graph.node if n.name in kept_names and floats.intersection([*n.input, *n.output])]
    info = {"kept_fp32_ops": sorted({n.op_type for n in kept}), "kept_fp32_nodes": len(kept)}
    new_meta = meta.replace(precision="fp16", extra={**meta.extra, "fp16": info})
    set_metadata(converted, new_meta)
    log.info(
        "FP16: %d of %d nodes kept FP32 (%s); %d FP16 round trips removed",
        len(kept), len(model.graph.node), ", ".join(f"{k} x{v}" for k, v in Counter(n.op_type for n in kept).most_common()), removed,
    )  # fmt: skip
    return converted, new_meta


def _check_op_names(onnx: Any, ops: Sequence[str]) -> None:
    known = {schema.name for schema in onnx.defs.get_all_schemas()}
    for op in ops:
        if op not in known:
            close = difflib.get_close_matches(op, known, n=1)
            raise ConfigError(
                f"unknown ONNX operator {op!r} in keep_fp32_ops",
                hint=f"did you mean {close[0]!r}?" if close else "use ONNX op type names, e.g. Softmax, ReduceMean",
            )


def _cast_to(node: Any) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _drop_cast_pairs(graph: Any) -> int:
    """Remove the FP32 -> FP16 -> FP32 round trips the converter puts between two FP32 nodes.

    The converter renames a kept node's output ``t`` to ``t_cast_to_fp16`` (FP32) and adds
    ``Cast(to FP16) -> t``; a kept consumer then reads ``Cast(t, to FP32)``. Here the
    consumer reads the FP32 tensor directly, and where no FP16 node reads ``t`` the first
    Cast goes too and the tensor gets its original name back. Only the converter's own
    Casts (``*_cast_to_fp16_node``) are touched: a Cast pair in the source model stays.

    Returns:
        The number of round trips removed.
    """
    from onnx import TensorProto

    def ours(node: Any) -> bool:
        return _cast_to(node) == TensorProto.FLOAT16 and node.name.endswith("_cast_to_fp16_node")

    producer = {out: node for node in graph.node for out in node.output}
    outputs = {value.name for value in graph.output}
    dropped: list[Any] = []
    for second in list(graph.node):
        first = producer.get(second.input[0]) if _cast_to(second) == TensorProto.FLOAT else None
        if first is None or not ours(first):
            continue
        fp32, target = first.input[0], second.output[0]
        if target in outputs:  # the FP32 node writes the graph output itself
            _rename(graph, fp32, target)
            producer[target] = producer[fp32]
        else:
            _rename(graph, target, fp32)
        dropped.append(second)
    for node in dropped:
        graph.node.remove(node)
    consumed = {name for node in graph.node for name in node.input} | outputs
    taken = {name for node in graph.node for name in [*node.input, *node.output]}
    for node in [n for n in graph.node if ours(n)]:
        fp32 = node.input[0]
        if fp32 in outputs:
            continue
        if node.output[0] not in consumed:  # no FP16 reader left: drop the Cast, the FP32 tensor gets its name back
            graph.node.remove(node)
            _rename(graph, fp32, node.output[0])
        elif f"{node.output[0]}_fp32" not in taken:  # read in both precisions: name the FP32 one for what it is
            _rename(graph, fp32, f"{node.output[0]}_fp32")
    return len(dropped)


def _rename(graph: Any, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` where nodes write or read it."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
