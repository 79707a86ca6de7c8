"""ONNX-to-ONNX steps on an edgecv (or adoptable) model: in-graph NMS, in-graph preprocessing, FP16.

Applied in that order, so the FP16 pass sees the NMS tail and keeps it in FP32.
Used by ``edgecv convert`` and by ``edgecv export --nms/--preprocess-in-graph/--fp16``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecv.artifact import ModelMeta
from edgecv.engine.onnxruntime import read_onnx_meta as read_meta
from edgecv.graph.onnx_graph import load_onnx, save_onnx


@dataclass(frozen=True, slots=True)
class NmsOptions:
    kind: str = "onnx"  # "onnx" (ONNX Runtime + TensorRT) or "efficient" (EfficientNMS_TRT, TensorRT only)
    iou: float = 0.45
    conf: float = 0.25
    max_det: int = 100

    def __post_init__(self) -> None:
        from edgecv.export.nms import check_nms_options

        check_nms_options(self.kind, self.iou, self.conf, self.max_det)


def convert_onnx(
    source: Path,
    dest: Path,
    *,
    nms: NmsOptions | None = None,
    preprocess_in_graph: bool = False,
    fp16: bool = False,
    keep_fp32_ops: Sequence[str] = (),
) -> ModelMeta:
    """Write ``dest``: ``source`` with the requested graph edits, its metadata updated. Returns that metadata.

    Raises:
        ConfigError: nothing to do, or options that do not apply to this model.
        ExportError: the graph does not have the layout an edit needs.
    """
    from edgecv.errors import ConfigError

    if nms is None and not preprocess_in_graph and not fp16:
        raise ConfigError("nothing to convert", hint="pass --fp16, --preprocess-in-graph and/or --nms")
    meta = read_meta(Path(source))
    model = load_onnx(Path(source))
    if nms is not None:
        if meta.task != "detect":
            raise ConfigError(f"--nms applies to detectors; this is a {meta.task} model")
        from edgecv.export.nms import add_nms

        model, meta = add_nms(model, meta, iou=nms.iou, conf=nms.conf, max_det=nms.max_det, kind=nms.kind)
    if preprocess_in_graph:
        from edgecv.export.preprocess import add_preprocess

        model, meta = add_preprocess(model, meta)
    if fp16:
        from edgecv.graph.fp16 import DEFAULT_KEEP, convert_fp16

        model, meta = convert_fp16(model, meta, keep_fp32_ops=(*DEFAULT_KEEP, *keep_fp32_ops))
    save_onnx(model, Path(dest))
    return meta


def describe_edits(meta: ModelMeta) -> list[str]:
    """Human lines saying what is in the graph (for the CLI)."""
    lines = []
    nms = meta.extra.get("nms") if meta.nms_in_graph else None
    if nms:
        lines.append(f"NMS in the graph ({nms['kind']}): IoU {nms['iou']}, score > {nms['conf']}, at most {nms['max_det']} per image")
        if nms["kind"] == "efficient":
            lines.append("note: EfficientNMS_TRT runs on TensorRT only; ONNX Runtime (run, eval on CPU) cannot load this file")
    if meta.preprocess_in_graph:
        lines.append(f"preprocessing in the graph: input is uint8 {meta.layout} BGR; cast, {meta.color} order and normalization inside")
    fp16 = meta.extra.get("fp16") if meta.precision == "fp16" else None
    if fp16:
        lines.append(f"FP16: weights and compute FP16, inputs/outputs FP32; {fp16['kept_fp32_nodes']} nodes kept FP32 ({', '.join(fp16['kept_fp32_ops'])})")
    return lines
