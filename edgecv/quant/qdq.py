"""INT8 Q/DQ graphs from calibrated ranges, for TensorRT or for ONNX Runtime's CPU kernels.

The graph work is done by ONNX Runtime's ``QDQQuantizer`` (the engine behind
``quantize_static``), fed with our own ranges (:mod:`edgecv.quant.ranges`) so one pass of
statistics serves every method and every mixed-precision trial. Two targets, two graphs
(FACTS: the form TensorRT wants runs slower than FP32 on ONNX Runtime's CPU kernels):

``tensorrt``
    Symmetric INT8 activations (zero point 0), per-channel symmetric INT8 weights, Q/DQ
    only on the inputs of Conv/ConvTranspose/Gemm/MatMul, biases left float. Weighted
    layers' outputs are not quantized, and every other node reads the float tensor (ONNX
    Runtime's quantizer would hand all consumers of a quantized tensor its dequantized
    copy; :func:`_float_for_unquantized` undoes that), so the box decode, the
    concatenation of boxes and scores, the final Sigmoid and NMS stay float. TensorRT 10
    and 11 build this as explicit quantization.
``cpu``
    UINT8 asymmetric activations and per-channel INT8 weights on every operator ONNX
    Runtime has a quantized kernel for (QLinearConv, QLinearMul, QLinearSigmoid, ...),
    which is where its CPU speed-up comes from. The output tail stays float.

Kept-float nodes (the accuracy gate's choice, and the output tail) are passed to the
quantizer as ``nodes_to_exclude`` and, like every unquantized node, read float inputs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgecv._optional import require
from edgecv.errors import ConfigError
from edgecv.quant.ranges import DEFAULT_PERCENTILE, TensorStats

log = logging.getLogger(__name__)

TARGETS = ("tensorrt", "cpu")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# ONNX Runtime ops without a quantized CPU kernel worth the Q/DQ (BatchNormalization after a
# Conv is folded by the exporter; a stray one has no per-channel weight axis).
_CPU_SKIP = frozenset({"BatchNormalization", "InstanceNormalization", "LayerNormalization"})


@dataclass(frozen=True)
class Placement:
    """Which nodes a target quantizes.

    Attributes:
        quantized: names of the nodes that get Q/DQ on their inputs.
        layers: the units the accuracy gate may return to float: each weighted node with
            the quantized non-weighted nodes downstream of it, ``{label: [node names]}``.
            The label is the weight's name (``backbone.stem.conv``), else the node's name.
        tail: nodes kept float because they follow the last weighted layers.
    """

    quantized: tuple[str, ...]
    layers: dict[str, tuple[str, ...]]
    tail: tuple[str, ...]


def check_float_model(model: Any, precision: str) -> None:
    """Refuse graphs that are already quantized or not FP32."""
    qdq = [n.name or n.op_type for n in model.graph.node if n.op_type in QDQ_OPS or n.op_type.startswith("QLinear")]
    if qdq:
        raise ConfigError(
            f"the model already has {len(qdq)} quantization nodes (e.g. {', '.join(qdq[:3])}): it is quantized",
            hint="calibrate the FP32 model that `edgecv export` wrote, not an INT8 one",
        )
    if precision != "fp32":
        raise ConfigError(
            f"the model is {precision}; INT8 calibration starts from the FP32 model",
            hint="pass the FP32 .onnx (not the .fp16.onnx)",
        )


def prepare(model: Any) -> Any:
    """A copy with named nodes and inferred value infos: what statistics and placement need."""
    onnx = require("onnx")
    from edgecv.graph.onnx_graph import name_nodes

    work = onnx.ModelProto()
    work.CopyFrom(model)
    name_nodes(work.graph)
    return onnx.shape_inference.infer_shapes(work)


def op_types(target: str) -> list[str]:
    """The operator types ``target`` quantizes."""
    if target == "tensorrt":
        return list(WEIGHTED_OPS)
    if target == "cpu":
        from edgecv.graph.ort_compat import quantized_op_types

        return sorted(quantized_op_types() - _CPU_SKIP)
    raise ConfigError(f"unknown INT8 target {target!r}", hint=f"use one of {', '.join(TARGETS)}")


def placement(model: Any, target: str, *, keep_tail: bool = True) -> Placement:
    """Which nodes of ``model`` (prepared, see :func:`prepare`) ``target`` quantizes, grouped into layers."""
    from edgecv.graph.fp16 import tail_nodes

    tail = tuple(tail_nodes(model)) if keep_tail else ()
    types = set(op_types(target))
    skip = set(tail)
    nodes = list(model.graph.node)
    quantized = [n for n in nodes if n.op_type in types and n.name not in skip]
    weights = {t.name for t in model.graph.initializer}
    producer = {out: node for node in nodes for out in node.output}
    owner: dict[str, str] = {}
    layers: dict[str, list[str]] = {}

    def label(node: Any) -> str:
        weight = next((name for name in node.input[1:2] if name in weights), "")
        return weight.removesuffix(".weight") if weight else node.name

    for node in quantized:  # graph order: a node's owner is decided before its consumers
        if node.op_type in WEIGHTED_OPS:
            key = label(node)
        else:
            source = producer.get(node.input[0]) if node.input else None
            key = owner.get(source.name) if source is not None else None
            key = key or node.name
        owner[node.name] = key
        layers.setdefault(key, []).append(node.name)
    return Placement(tuple(n.name for n in quantized), {k: tuple(v) for k, v in layers.items()}, tail)


def range_tensors(model: Any, targets: Sequence[str], *, keep_tail: bool = True) -> list[str]:
    """The activations whose ranges the Q/DQ graphs of ``targets`` can use, in graph order.

    ``tensorrt``: the activation inputs of the weighted nodes (their outputs are not
    quantized); ``cpu``: the activation inputs and outputs of every quantized node.
    Statistics of other tensors would never be read by the quantizer.
    """
    weights = {t.name for t in model.graph.initializer}
    wanted: set[str] = set()
    for target in targets:
        place = placement(model, target, keep_tail=keep_tail)
        chosen = set(place.quantized)
        for node in model.graph.node:
            if node.name not in chosen:
                continue
            names = list(node.input) if target == "tensorrt" else [*node.input, *node.output]
            wanted |= {n for n in names if n and n not in weights}
    from edgecv.quant.collect import float_activations

    return [name for name in float_activations(model) if name in wanted]


def amaxes(stats: Mapping[str, TensorStats], method: str, percentile: float = DEFAULT_PERCENTILE) -> dict[str, float]:
    """``{tensor: amax}`` for one calibration method (computed once, shared by both targets)."""
    return {name: s.amax(method, percentile) for name, s in stats.items() if s.count}


def tensor_ranges(stats: Mapping[str, TensorStats], amax: Mapping[str, float], *, symmetric: bool) -> dict[str, tuple[float, float]]:
    """``{tensor: (low, high)}``: ``(-amax, amax)``, or the observed range clipped to it."""
    if symmetric:
        return {name: (-a, a) for name, a in amax.items()}
    return {name: (max(stats[name].min, -a), min(stats[name].max, a)) for name, a in amax.items()}


def quantize(
    model: Any,
    ranges: Mapping[str, tuple[float, float]],
    *,
    target: str = "tensorrt",
    keep_tail: bool = True,
    keep_float: Iterable[str] = (),
) -> tuple[Any, list[str]]:
    """The Q/DQ graph of ``model`` (prepared, see :func:`prepare`; not modified).

    Args:
        ranges: ``{tensor: (low, high)}`` from :func:`tensor_ranges`, for the target's symmetry.
        target: "tensorrt" or "cpu" (see the module doc).
        keep_tail: keep the output tail (decode, concat of boxes and scores, sigmoid, NMS) float.
        keep_float: node names to keep float as well.

    Returns:
        The quantized ``onnx.ModelProto`` and the names of the nodes that read INT8 inputs.
    """
    onnx = require("onnx")
    quant_utils = require("onnxruntime.quantization.quant_utils")
    from edgecv.graph import ort_compat
    from edgecv.graph.onnx_graph import toposort

    place = placement(model, target, keep_tail=keep_tail)
    excluded = set(place.tail) | set(keep_float)
    quantized = [name for name in place.quantized if name not in excluded]
    work = onnx.ModelProto()
    work.CopyFrom(model)
    symmetric = target == "tensorrt"
    options: dict[str, Any] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if target == "tensorrt":
        options |= {"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS)}
    quantizer = ort_compat.qdq_quantizer(
        work,
        per_channel=True,
        reduce_range=False,  # a VNNI-era workaround, not needed for TensorRT or current CPUs
        weight_type=quant_utils.QuantType.QInt8,
        activation_type=quant_utils.QuantType.QInt8 if symmetric else quant_utils.QuantType.QUInt8,
        tensors_range=ort_compat.tensors_data(ranges),
        nodes_to_quantize=quantized,
        nodes_to_exclude=sorted(excluded),
        op_types_to_quantize=op_types(target),
        extra_options=options,
    )
    _quiet(quantizer.quantize_model)
    out = quantizer.model.model
    _float_for_unquantized(out.graph, set(quantized))
    _drop_unused(out.graph)
    toposort(out.graph)  # the quantizer appends its Q/DQ nodes
    return out, quantized


def _quiet(fn: Any) -> Any:
    """Run ``fn`` with the quantizer's per-tensor warnings (root logger) sent to debug."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        return fn()
    finally:
        root.setLevel(level)


def _float_for_unquantized(graph: Any, quantized: set[str]) -> int:
    """Nodes that were not quantized read the float tensor, not its Q/DQ copy. Returns the inputs rewired."""
    producer = {out: node for node in graph.node for out in node.output}
    rewired = 0
    for node in graph.node:
        if node.name in quantized or node.op_type in QDQ_OPS:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a quantized weight: its float copy is gone, and only weighted nodes read weights
            node.input[i] = q.input[0]
            rewired += 1
    return rewired


def _drop_unused(graph: Any) -> None:
    """Remove Q/DQ nodes nobody reads any more, then initializers nobody reads."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def describe(model: Any) -> dict[str, Any]:
    """Counts for the report: Q/DQ nodes and which op types read INT8."""
    producer = {out: node for node in model.graph.node for out in node.output}
    readers: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input):
            readers[node.op_type] += 1
    counts = Counter(n.op_type for n in model.graph.node if n.op_type in QDQ_OPS)
    return {"quantize_nodes": counts["QuantizeLinear"], "dequantize_nodes": counts["DequantizeLinear"], "int8_ops": dict(readers)}


def kept_float_layers(place: Placement, keep_float: Sequence[str]) -> list[str]:
    """Labels of the layers all of whose nodes are kept float."""
    kept = set(keep_float)
    return [label for label, names in place.layers.items() if kept.issuperset(names)]
