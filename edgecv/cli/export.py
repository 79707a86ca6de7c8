"""`edgecv export` and `edgecv convert`: PyTorch or a foreign ONNX to an edgecv ONNX, and ONNX-to-ONNX edits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.artifact import atomic_output, check_writable
from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import FP16_HELP, NMS_HELP, PRE_HELP, batch_range, imgsz_arg, names_arg
from edgecv.errors import ArtifactError, ConfigError
from edgecv.log import out, progress_bar

log = logging.getLogger("edgecv.cli")

# ---------------------------------------------------------------- export
@app.command()
@handle_errors
def export(
    source: Annotated[str, typer.Argument(help="Checkpoint (.pt), a shipped model name (shapes-det, shapes-seg), or a foreign .onnx to adopt.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output .onnx (default: next to the source).")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture of a plain state dict (shapes-det, shapes-seg).", rich_help_panel="Model")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of classes of a plain state dict.", rich_help_panel="Model")] = None,
    width: Annotated[float, typer.Option(help="Width multiplier of a plain state dict's architecture (shipped models: 0.75).", rich_help_panel="Model")] = 1.0,
    names: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Class names, one per line.", rich_help_panel="Model")] = None,
    imgsz: Annotated[str | None, typer.Option(help="Input size H,W (or one number for square); for an adopted dynamic ONNX, its default size.", rich_help_panel="Graph")] = None,
    static: Annotated[bool, typer.Option("--static", help="Fixed batch 1 and image size (default: dynamic).", rich_help_panel="Graph")] = False,
    dynamic_batch: Annotated[str | None, typer.Option(help="Batch range MIN:OPT:MAX, recorded for TensorRT optimization profiles (default 1:1:16).", rich_help_panel="Graph")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.", rich_help_panel="Graph")] = 18,
    layout: Annotated[str, typer.Option(help="Foreign ONNX only: auto (recognise it from the shapes and input size), or name it where they cannot tell: yolov8, yolov5, yolox (raw grids), yolov8_seg, seg_logits, seg_binary.", rich_help_panel="Model")] = "auto",
    task: Annotated[str | None, typer.Option(help="Foreign ONNX only: detect / segment, where the shapes cannot tell.", rich_help_panel="Model")] = None,
    simplify: Annotated[bool, typer.Option(help="Simplify with onnxslim.", rich_help_panel="Graph")] = True,
    exporter: Annotated[str, typer.Option(help="dynamo (falls back to torchscript) or torchscript.", rich_help_panel="Graph")] = "dynamo",
    nms: Annotated[str | None, typer.Option(help=NMS_HELP, rich_help_panel="Graph")] = None,
    nms_conf: Annotated[float, typer.Option(help="In-graph NMS score threshold.", rich_help_panel="Graph")] = 0.25,
    nms_iou: Annotated[float, typer.Option(help="In-graph NMS IoU threshold.", rich_help_panel="Graph")] = 0.45,
    max_det: Annotated[int, typer.Option(help="In-graph NMS: detections per image (<= 3840).", rich_help_panel="Graph")] = 100,
    preprocess_in_graph: Annotated[bool, typer.Option("--preprocess-in-graph", help=PRE_HELP, rich_help_panel="Graph")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help=FP16_HELP, rich_help_panel="Precision")] = False,
    parity_images: Annotated[Path | None, typer.Option(exists=True, help="Images for the parity check (default: synthetic scenes).", rich_help_panel="Checks")] = None,
    atol: Annotated[float, typer.Option(help="Parity tolerance (absolute).", rich_help_panel="Checks")] = 1e-3,
    tolerance: Annotated[float, typer.Option(help="Least task-level agreement with PyTorch (share of detections matched / pixels equal).", rich_help_panel="Checks")] = 0.99,
) -> None:
    """Export a PyTorch model to ONNX with metadata, simplify it and check it against PyTorch.

    A foreign ONNX (Ultralytics YOLOv5/v8/11, a segmenter) is adopted instead: its layout is
    recognised and edgecv metadata is added, without torch.

    Example: edgecv export shapes-det -o shapes-det.onnx
    """
    from edgecv import assets
    from edgecv._optional import require
    from edgecv.data.datasets import list_images

    src = Path(source)
    if not src.exists() and src.suffix == "" and arch is None:
        src = assets.shipped(source, ".pt")
    if not src.exists():
        raise ArtifactError(f"{source} not found", hint="pass a .pt checkpoint or a shipped model name (shapes-det, shapes-seg)")
    from edgecv.export.convert import NmsOptions

    nms_options = NmsOptions(nms, nms_iou, nms_conf, max_det) if nms is not None else None  # checked before any work
    batch = batch_range(dynamic_batch) if dynamic_batch else None
    size = imgsz_arg(imgsz)
    if src.suffix.lower() != ".onnx" and (layout != "auto" or task is not None):
        raise ConfigError("--layout and --task describe a foreign .onnx being adopted", hint="leave them out when exporting a checkpoint")
    if src.suffix.lower() == ".onnx":  # adopt a foreign ONNX: metadata only, no torch needed
        require("onnx")
        from edgecv.export.adopt import adopt_onnx

        dest = check_writable(output or src.with_name(src.stem + ".edgecv.onnx"))
        with atomic_output(dest) as tmp:  # the target is replaced only after adoption and every edit passed
            adopted = adopt_onnx(src, tmp, names=names_arg(names), layout=layout, task=task, imgsz=size)
            _graph_edits(tmp, nms_options, preprocess_in_graph, fp16)
        out.print(f"adopted {src} -> {dest}: recognised {adopted.recognised}; outputs identical to the original")
        out.print(f"  how: {adopted.meta.extra.get('layout_reason', adopted.meta.output_format)}", highlight=False)
        if adopted.meta.dynamic:
            out.print(f"  default input size {adopted.meta.input_size[0]},{adopted.meta.input_size[1]} (change with --imgsz at export or run time)", highlight=False)
        _print_edits(dest, nms_options, preprocess_in_graph, fp16)
        return
    from edgecv.export.ultralytics import export_ultralytics, is_ultralytics_checkpoint

    if src.suffix.lower() in (".pt", ".pth") and is_ultralytics_checkpoint(src):
        require("onnx")
        dest = check_writable(output or src.with_suffix(".onnx"))
        with atomic_output(dest) as tmp:
            adopted = export_ultralytics(src, tmp, imgsz=size, dynamic=not static, opset=opset, simplify=simplify, names=names_arg(names))
            _graph_edits(tmp, nms_options, preprocess_in_graph, fp16)
        out.print(f"exported {src} with ultralytics -> {dest}: recognised {adopted.recognised}")
        _print_edits(dest, nms_options, preprocess_in_graph, fp16)
        return
    require("torch")
    require("onnx")
    from edgecv.export import ExportConfig, export_model

    cfg = ExportConfig(
        arch=arch, num_classes=num_classes, width=width, names=names_arg(names), batch_range=batch, input_size=size, dynamic=not static, opset=opset,
        simplify=simplify, exporter=exporter, atol=atol, tolerance=tolerance,
        parity_images=tuple(list_images(parity_images)) if parity_images else (),
    )
    dest = check_writable(output or src.with_suffix(".onnx"))
    # export, parity check and graph edits all happen on a temp file: a failure keeps an existing `dest`
    with atomic_output(dest) as tmp, progress_bar("export", 4, state["quiet"]) as update:
        report = export_model(src, tmp, cfg, progress=update, keep_failed=dest)
        _graph_edits(tmp, nms_options, preprocess_in_graph, fp16)
    out.print(
        f"exported {dest} ({report.meta.task}, {report.meta.num_classes} classes, "
        f"{report.size_bytes / 1e6:.1f} MB, {report.exporter}) in {report.seconds:.1f} s; "
        f"parity vs PyTorch: max abs diff {report.max_abs_diff:.2e}"
    )
    if report.parity is not None:
        p = report.parity
        out.print(
            f"parity on {p.images} images: mean abs diff {p.mean_abs_diff:.2e}, {p.agreement_metric}: {p.agreement:.2%}",
            highlight=False, soft_wrap=True,
        )
    _print_edits(dest, nms_options, preprocess_in_graph, fp16)


def _graph_edits(path: Path, nms: Any, preprocess_in_graph: bool, fp16: bool) -> None:
    """Apply the requested ONNX-to-ONNX edits in place (atomically)."""
    if nms is None and not preprocess_in_graph and not fp16:
        return
    from edgecv.export.convert import convert_onnx

    convert_onnx(path, path, nms=nms, preprocess_in_graph=preprocess_in_graph, fp16=fp16)


def _print_edits(path: Path, nms: Any, preprocess_in_graph: bool, fp16: bool) -> None:
    """Say what the graph now holds (after the edits)."""
    if nms is None and not preprocess_in_graph and not fp16:
        return
    from edgecv.export.convert import describe_edits, read_meta

    for line in describe_edits(read_meta(path)):
        out.print(line, highlight=False)


# ---------------------------------------------------------------- convert
@app.command()
@handle_errors
def convert(
    model: Annotated[Path, typer.Argument(help="ONNX model (edgecv's, or a foreign one edgecv recognises).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output .onnx (default: MODEL.fp16.onnx / MODEL.conv.onnx).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help=FP16_HELP, rich_help_panel="Precision")] = False,
    keep_fp32: Annotated[str | None, typer.Option(help="More op types to keep FP32, e.g. Resize,Mul.", rich_help_panel="Precision")] = None,
    preprocess_in_graph: Annotated[bool, typer.Option("--preprocess-in-graph", help=PRE_HELP, rich_help_panel="Graph")] = False,
    nms: Annotated[str | None, typer.Option(help=NMS_HELP, rich_help_panel="Graph")] = None,
    nms_conf: Annotated[float, typer.Option(help="In-graph NMS score threshold.", rich_help_panel="Graph")] = 0.25,
    nms_iou: Annotated[float, typer.Option(help="In-graph NMS IoU threshold.", rich_help_panel="Graph")] = 0.45,
    max_det: Annotated[int, typer.Option(help="In-graph NMS: detections per image (<= 3840).", rich_help_panel="Graph")] = 100,
) -> None:
    """Convert an ONNX model: FP16 mixed precision, preprocessing and/or NMS inside the graph.

    Example: edgecv convert models/shapes-det.onnx --fp16 -o shapes-det.fp16.onnx
    """
    from edgecv._optional import require

    require("onnx")
    from edgecv.export.convert import NmsOptions, convert_onnx, describe_edits

    if not model.exists():
        raise ArtifactError(f"{model} not found", hint="check the path")
    nms_options = NmsOptions(nms, nms_iou, nms_conf, max_det) if nms is not None else None
    dest = check_writable(output or model.with_name(model.stem + (".fp16.onnx" if fp16 else ".conv.onnx")))
    extra_ops = [op for op in (keep_fp32 or "").replace(" ", "").split(",") if op]
    meta = convert_onnx(model, dest, nms=nms_options, preprocess_in_graph=preprocess_in_graph, fp16=fp16, keep_fp32_ops=extra_ops)
    out.print(f"converted {model} -> {dest} ({meta.precision})")
    for line in describe_edits(meta):
        out.print(line, highlight=False)


