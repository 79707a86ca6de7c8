"""Append NMS to a YOLOv8-layout detector graph: one ONNX that returns final detections.

    output0 (B, 4+nc, A) ── Transpose ──┬─ cx,cy,w,h ── x1,y1,x2,y2 ─────────────── boxes (B, A, 4)
                                        └─ scores (B, A, nc) ── ArgMax ── best class only ── (B, A, nc)
    kind="onnx":      NonMaxSuppression (per class) ── ScatterND the kept (batch, anchor) pairs into a
                      (B, A) score map (-1 = not kept) ── TopK(max_det) ── GatherElements boxes/classes
    kind="efficient": one EfficientNMS_TRT node (TensorRT plugin)
    ──▶ num_dets (B, 1) int32, boxes (B, max_det, 4) float32 x1 y1 x2 y2 in input pixels,
        scores (B, max_det) float32, classes (B, max_det) int32  (the EfficientNMS_TRT layout;
        rows >= num_dets are zero padding)

Instance segmenters (``yolov8_seg``: a (B, 4 + nc + 32, A) output and (B, 32, h, w) prototypes)
get the same NMS; the kept rows' 32 mask coefficients are gathered with the boxes into
``mask_coefs`` (B, max_det, 32) and the prototypes pass through as ``protos``, so the host only
multiplies K coefficient rows with the prototypes (``kind="onnx"`` only: EfficientNMS_TRT does
not return which anchors it kept).

Single-label, like :func:`edgecv.vision.decode.decode_yolov8` (and Ultralytics): NMS gets each
anchor's best class score and 0 for its other classes, so with ``score_threshold = conf >= 0``
only the best class of an anchor can be kept, and per-class NMS is class-aware single-label NMS.

Exactness (``kind="onnx"`` on ONNX Runtime) against ``decode_yolov8(raw, conf, iou, max_det=max_det)``:
ORT keeps a box when score > score_threshold and suppresses when IoU > iou_threshold (both strict,
as the host), breaks score ties by lower anchor index (as the host's stable sort), and computes
IoU with the same float32 arithmetic. The thresholds are stored as the float32 values that make
``float32 > t`` equal the host's comparison, and TopK (ties: lower index first) over a per-anchor
score map orders the kept boxes as the host does, so the kept boxes, order, scores and classes are
identical. Remaining differences: the host's class-aware NMS on <= 1000 candidates shifts boxes
by ``class_id * (max coordinate + 1)`` in float32 (torchvision's trick), which can round an IoU
that sits exactly at the threshold differently for classes > 0; the host caps candidates at
``pre_nms_topk`` (30000); ORT builds that fuse multiply-adds (aarch64) may round IoUs differently.
Batches are exact per image: NonMaxSuppression runs per batch element and the ScatterND indices
carry the batch index. TensorRT maps NonMaxSuppression to its NMS layer, whose tie order is
unspecified; EfficientNMS_TRT only looks at the 4096 best candidates.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.artifact import SEG_PROTOS, ModelMeta
from edgecv.errors import ConfigError, ExportError
from edgecv.graph.onnx_graph import dim_value, tensor_names
from edgecv.vision.decode import NMS_MASK_OUTPUTS

log = logging.getLogger(__name__)

NMS_KINDS = ("onnx", "efficient")
OUTPUT_NAMES = ("num_dets", "boxes", "scores", "classes")
_PREFIX = "edgecv_nms"
# TensorRT's ONNX parser finds plugins by op_type (+ plugin_version/plugin_namespace), whatever the
# domain; a custom domain lets onnx.checker skip the unknown op (domain "" fails: "No Op registered").
TRT_DOMAIN = "TRT"


def check_nms_options(kind: str, iou: float, conf: float, max_det: int) -> None:
    """Raise ConfigError for options in-graph NMS cannot honour (checked before any work is done)."""
    if kind not in NMS_KINDS:
        close = difflib.get_close_matches(kind, NMS_KINDS, n=1)
        raise ConfigError(f"unknown NMS kind {kind!r}", hint=f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(NMS_KINDS)}")
    if not 0 <= iou <= 1 or not 0 <= conf < 1:
        raise ConfigError(f"in-graph NMS needs iou in [0, 1] and conf in [0, 1), got iou={iou}, conf={conf}")
    if not 1 <= max_det <= 3840:
        raise ConfigError(f"max_det must be in [1, 3840] for in-graph NMS, got {max_det}", hint="TensorRT's TopK allows K <= 3840")


def add_nms(
    model: Any, meta: ModelMeta, *, iou: float = 0.45, conf: float = 0.25, max_det: int = 100, kind: str = "onnx"
) -> tuple[Any, ModelMeta]:
    """Append box decoding and NMS to a YOLOv8-layout detector.

    Args:
        model: ``onnx.ModelProto`` with one output (B, 4 + nc, A): cx, cy, w, h in input pixels,
            then nc sigmoid class scores (float32 or float16; opset >= 11).
        meta: its metadata (``output_format="yolov8"``, nc class names).
        iou: a box whose IoU with a kept box of the same class is > ``iou`` is dropped.
        conf: anchors whose best score is > ``conf`` are candidates, in [0, 1).
        max_det: at most this many detections per image (TensorRT's TopK allows <= 3840).
        kind: ``"onnx"`` (standard ops; ONNX Runtime and TensorRT) or ``"efficient"`` (one
            ``EfficientNMS_TRT`` plugin node: TensorRT only, ONNX Runtime cannot run it; boxes
            are fed as corners, ``box_coding=0``, so decoding is the same as ``"onnx"``).

    Returns:
        A new model (``model`` is not modified) whose outputs are ``num_dets`` (B, 1) int32,
        ``boxes`` (B, max_det, 4) float32, ``scores`` (B, max_det) float32, ``classes``
        (B, max_det) int32, with its metadata set; and the metadata with ``output_format="nms"``,
        ``nms_in_graph=True`` and the parameters in ``extra["nms"]``.

    Raises:
        ConfigError: a parameter is out of range or ``kind`` is unknown.
        ExportError: the graph is not a YOLOv8-layout detector or already has NMS.
    """
    onnx = require("onnx")
    from onnx import TensorProto, helper

    from edgecv.graph.onnx_graph import set_metadata

    check_nms_options(kind, iou, conf, max_det)
    raw, nc, batch, protos = _yolo_output(model, meta)
    if protos is not None and kind == "efficient":
        raise ConfigError(
            "--nms efficient cannot keep mask coefficients (EfficientNMS_TRT does not say which anchors it kept)",
            hint="use --nms onnx for instance-segmentation models",
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        raise ExportError(f"in-graph NMS needs ONNX opset >= 11, the model has opset {opset}", hint="re-export with `edgecv export --opset 18`")

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    taken = tensor_names(graph) - {raw.name} - ({protos.name} if protos is not None else set())
    clash = sorted(taken & set(OUTPUT_NAMES + NMS_MASK_OUTPUTS))
    if clash:
        raise ExportError(f"the graph already has tensors named {clash}", hint="rename them; in-graph NMS outputs use these names")
    nodes: list[Any] = []
    inits: dict[str, Any] = {}

    def op(op_type: str, inputs: list[str], n_out: int = 1, outputs: list[str] | None = None, **attrs: Any) -> Any:
        names = outputs or [f"{_PREFIX}/{len(nodes)}_{op_type.lower()}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op_type, inputs, names, name=f"{_PREFIX}/{op_type}_{len(nodes)}", **attrs))
        return names[0] if n_out == 1 else names

    def const(label: str, value: Any, dtype: Any = np.int64) -> str:  # one initializer per label
        name = f"{_PREFIX}/{label}"
        inits.setdefault(name, onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    x = raw.name
    if raw.type.tensor_type.elem_type != TensorProto.FLOAT:
        x = op("Cast", [x], to=TensorProto.FLOAT)
    x = op("Transpose", [x], perm=[0, 2, 1])  # (B, A, 4 + nc)
    axis2 = const("axis2", [2])

    def cols(start: int, stop: int) -> str:
        return op("Slice", [x, const(f"start{start}", [start]), const(f"stop{stop}", [stop]), axis2])

    cxcy, wh, cls = cols(0, 2), cols(2, 4), cols(4, 4 + nc)
    half = op("Div", [wh, const("two", 2.0, np.float32)])  # same float32 arithmetic as the host
    boxes = op("Concat", [op("Sub", [cxcy, half]), op("Add", [cxcy, half])], axis=2)  # (B, A, 4)
    best_cls = op("ArgMax", [cls], axis=2, keepdims=1)  # (B, A, 1) int64, first max
    best_only = op("Equal", [best_cls, const("class_range", np.arange(nc))])  # (B, A, nc)
    single = op("Where", [best_only, cls, const("zero", 0.0, np.float32)])  # best class score, 0 elsewhere

    iou_t, conf_t = _float32_threshold(iou), np.float32(conf)
    if kind == "efficient":
        op(
            "EfficientNMS_TRT", [boxes, single], outputs=list(OUTPUT_NAMES), background_class=-1, box_coding=0,
            iou_threshold=float(iou_t), max_output_boxes=max_det, score_activation=0, score_threshold=float(conf_t),
            class_agnostic=0, plugin_version="1", plugin_namespace="", domain=TRT_DOMAIN,
        )
        if not any(o.domain == TRT_DOMAIN for o in out.opset_import):
            out.opset_import.append(helper.make_opsetid(TRT_DOMAIN, 1))
    else:
        selected = op(
            "NonMaxSuppression",
            [boxes, op("Transpose", [single], perm=[0, 2, 1]), const("max_det", [max_det]),
             const("iou", [iou_t], np.float32), const("conf", [conf_t], np.float32)],
            center_point_box=0,
        )  # (N, 3) int64 [batch, class, anchor]
        batch_anchor = op("Gather", [selected, const("batch_anchor", [0, 2])], axis=1)  # (N, 2)
        best = op("Reshape", [op("GatherElements", [cls, best_cls], axis=2), const("flat", [0, -1])])  # (B, A)
        unkept = op("ConstantOfShape", [op("Shape", [best])], value=helper.make_tensor("", TensorProto.FLOAT, [1], [-1.0]))
        kept = op("ScatterND", [unkept, batch_anchor, op("GatherND", [best, batch_anchor])])  # (B, A), -1 = dropped
        b_dim = op("Slice", [op("Shape", [kept]), const("start0", [0]), const("stop1", [1])])
        pad_shape = op("Concat", [b_dim, const("max_det", [max_det])], axis=0)
        pad = op("ConstantOfShape", [pad_shape], value=helper.make_tensor("", TensorProto.FLOAT, [1], [-1.0]))
        # padding with max_det x -1 keeps K a constant (TensorRT) even when A < max_det
        top, index = op("TopK", [op("Concat", [kept, pad], axis=1), const("max_det", [max_det])], 2, axis=1, largest=1, sorted=1)
        valid = op("Greater", [top, const("minus_half", -0.5, np.float32)])  # kept scores are > conf >= 0
        index = op("Where", [valid, index, const("zero_i", 0)])
        op("Where", [valid, top, const("zero", 0.0, np.float32)], outputs=["scores"])
        index3 = op("Reshape", [index, const("col", [0, -1, 1])])  # (B, max_det, 1)
        rows = op("GatherElements", [boxes, op("Expand", [index3, const("four", [1, 1, 4])])], axis=1)
        valid3 = op("Reshape", [valid, const("col", [0, -1, 1])])
        op("Where", [valid3, rows, const("zero", 0.0, np.float32)], outputs=["boxes"])
        if protos is not None:
            coefs = cols(4 + nc, 4 + nc + SEG_PROTOS)  # (B, A, 32)
            coef_rows = op("GatherElements", [coefs, op("Expand", [index3, const("protos_n", [1, 1, SEG_PROTOS])])], axis=1)
            op("Where", [valid3, coef_rows, const("zero", 0.0, np.float32)], outputs=["mask_coefs"])
            protos_f = protos.name
            if protos.type.tensor_type.elem_type != TensorProto.FLOAT:
                protos_f = op("Cast", [protos_f], to=TensorProto.FLOAT)
            op("Identity", [protos_f], outputs=["protos"])
        labels = op("Cast", [op("GatherElements", [op("Reshape", [best_cls, const("flat", [0, -1])]), index], axis=1)], to=TensorProto.INT32)
        op("Where", [valid, labels, const("zero_i32", 0, np.int32)], outputs=["classes"])
        count = op("Cast", [valid], to=TensorProto.INT32)
        if opset >= 13:
            op("ReduceSum", [count, const("axis1", [1])], outputs=["num_dets"], keepdims=1)
        else:
            op("ReduceSum", [count], outputs=["num_dets"], axes=[1], keepdims=1)

    graph.node.extend(nodes)
    graph.initializer.extend(inits.values())
    outputs = [
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, max_det, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, max_det]),
        helper.make_tensor_value_info("classes", TensorProto.INT32, [batch, max_det]),
    ]
    if protos is not None:
        proto_dims = [dim_value(d) for d in protos.type.tensor_type.shape.dim]
        outputs += [
            helper.make_tensor_value_info("mask_coefs", TensorProto.FLOAT, [batch, max_det, SEG_PROTOS]),
            helper.make_tensor_value_info("protos", TensorProto.FLOAT, proto_dims),
        ]
    del graph.output[:]
    graph.output.extend(outputs)
    params = {"kind": kind, "iou": iou, "conf": conf, "max_det": max_det, "class_aware": True}
    if protos is not None:
        params["masks"] = True  # mask_coefs + protos outputs
    new_meta = meta.replace(output_format="nms", nms_in_graph=True, extra={**meta.extra, "nms": params})
    set_metadata(out, new_meta)
    log.debug("added in-graph NMS (%s) after %r: %s", kind, raw.name, params)
    return out, new_meta


def _yolo_output(model: Any, meta: ModelMeta) -> tuple[Any, int, int | str | None, Any]:
    """The (B, 4 + nc [+ 32], A) output, nc, its batch dim (int, name or None), and the prototypes output (or None)."""
    fix = "add_nms needs a YOLOv8-layout detector: one output (B, 4 + nc, anchors), as `edgecv export` writes"
    if meta.nms_in_graph or meta.output_format == "nms":
        raise ExportError("the model already has NMS in the graph (metadata nms_in_graph=true)", hint="add it once, to the raw model")
    if meta.task != "detect" or meta.output_format not in ("yolov8", "yolov8_seg"):
        raise ExportError(f"cannot add NMS to a {meta.task} model with output format {meta.output_format!r}", hint=fix)
    outputs = list(model.graph.output)
    seg = meta.output_format == "yolov8_seg"
    protos = None
    if seg:
        ranks = {len(v.type.tensor_type.shape.dim): v for v in outputs}
        if len(outputs) != 2 or sorted(ranks) != [3, 4]:
            raise ExportError(f"a YOLOv8-seg model has a (B, C, A) and a (B, 32, h, w) output, got {[v.name for v in outputs]}")
        value, protos = ranks[3], ranks[4]
    elif len(outputs) != 1:
        raise ExportError(f"expected one output, the graph has {len(outputs)}: {[v.name for v in outputs]}", hint=fix)
    else:
        value = outputs[0]
    extra = SEG_PROTOS if seg else 0
    dims = [dim_value(d) for d in value.type.tensor_type.shape.dim]
    channels = dims[1] if len(dims) == 3 else None
    too_few_anchors = not seg and isinstance(dims[2] if len(dims) == 3 else None, int) and dims[2] <= (channels or 0)
    if not isinstance(channels, int) or channels != 4 + meta.num_classes + extra or too_few_anchors:
        raise ExportError(
            f"output {value.name!r} has shape {dims}; expected (B, {4 + meta.num_classes + extra}, anchors) "
            f"for {meta.num_classes} classes",
            hint=fix,
        )
    return value, meta.num_classes, dims[0], protos


def _float32_threshold(value: float) -> np.float32:
    """The float32 t with ``x > t`` <=> ``float64(x) > value`` for every float32 x (as the host's NMS)."""
    t = np.float32(value)
    if float(t) > value:
        t = np.nextafter(t, np.float32(-np.inf))
    return t


