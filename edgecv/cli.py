"""The ``edgecv`` command line: parse options, call the library, print results. No logic lives here."""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from edgecv import __version__
from edgecv.errors import EXIT_BUG, EXIT_INTERRUPTED, ConfigError, EdgecvError
from edgecv.log import console, out, progress_bar, setup_logging

log = logging.getLogger("edgecv.cli")

app = typer.Typer(
    name="edgecv",
    help="Detectors and segmenters from PyTorch to a fast real-time loop on Jetson and NVIDIA GPUs (ONNX Runtime on any CPU).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
_state = {"verbose": False, "quiet": False}
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn an EdgecvError into one `error:` line + fix hint and its exit code; bugs keep a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except EdgecvError as exc:
            if _state["verbose"]:
                console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                console.print(f"  [bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception:
            console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print("[bold red]internal error[/] (a bug in edgecv): please report it with the trace above")
            raise typer.Exit(EXIT_BUG) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"edgecv {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and full tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    _state["verbose"], _state["quiet"] = verbose, quiet
    setup_logging(verbose, quiet)


def _names(path: Path | None) -> tuple[str, ...] | None:
    from edgecv.artifact import read_names_file

    return read_names_file(path) if path else None


def _int_list(text: str | None, option: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}", hint=f"e.g. {option} 0,2") from None


def _batch_range(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        lo, opt, hi = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--dynamic-batch takes MIN:OPT:MAX, got {text!r}", hint="e.g. --dynamic-batch 1:4:16") from None
    return lo, opt, hi


def _default_model(model: Path | None) -> Path:
    from edgecv import assets

    return model if model is not None else assets.shipped(assets.DEFAULT_MODELS["detect"])


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
    imgsz: Annotated[str | None, typer.Option(help="Input size H,W (or one number for square).", rich_help_panel="Graph")] = None,
    static: Annotated[bool, typer.Option("--static", help="Fixed batch 1 and image size (default: dynamic).", rich_help_panel="Graph")] = False,
    dynamic_batch: Annotated[str | None, typer.Option(help="Batch range MIN:OPT:MAX, recorded for TensorRT optimization profiles (default 1:1:16).", rich_help_panel="Graph")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.", rich_help_panel="Graph")] = 18,
    layout: Annotated[str, typer.Option(help="Foreign ONNX only: auto (recognise the output), or yolox (raw YOLOX grids, decoded on the host).", rich_help_panel="Model")] = "auto",
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
        raise ConfigError(f"{source} not found", hint="pass a .pt checkpoint or a shipped model name (shapes-det, shapes-seg)")
    from edgecv.export.convert import NmsOptions

    nms_options = NmsOptions(nms, nms_iou, nms_conf, max_det) if nms is not None else None  # checked before any work
    batch_range = _batch_range(dynamic_batch) if dynamic_batch else None
    if src.suffix.lower() == ".onnx":  # adopt a foreign ONNX: metadata only, no torch needed
        require("onnx")
        from edgecv.export.adopt import adopt_onnx

        dest = output or src.with_name(src.stem + ".edgecv.onnx")
        adopted = adopt_onnx(src, dest, names=_names(names), layout=layout)
        out.print(f"adopted {src} -> {adopted.path}: recognised {adopted.recognised}; outputs identical to the original")
        _graph_edits(dest, nms_options, preprocess_in_graph, fp16)
        return
    size = None
    if imgsz:
        parts = _int_list(imgsz, "--imgsz") or []
        size = (parts[0], parts[-1])
    from edgecv.export.ultralytics import export_ultralytics, is_ultralytics_checkpoint

    if src.suffix.lower() in (".pt", ".pth") and is_ultralytics_checkpoint(src):
        require("onnx")
        dest = output or src.with_suffix(".onnx")
        adopted = export_ultralytics(src, dest, imgsz=size, dynamic=not static, opset=opset, simplify=simplify, names=_names(names))
        out.print(f"exported {src} with ultralytics -> {adopted.path}: recognised {adopted.recognised}")
        _graph_edits(dest, nms_options, preprocess_in_graph, fp16)
        return
    require("torch")
    require("onnx")
    from edgecv.export import ExportConfig, export_model

    cfg = ExportConfig(
        arch=arch, num_classes=num_classes, width=width, names=_names(names), batch_range=batch_range, input_size=size, dynamic=not static, opset=opset,
        simplify=simplify, exporter=exporter, atol=atol, tolerance=tolerance,
        parity_images=tuple(list_images(parity_images)) if parity_images else (),
    )
    dest = output or src.with_suffix(".onnx")
    with progress_bar("export", 4, _state["quiet"]) as update:
        report = export_model(src, dest, cfg, progress=update)
    out.print(
        f"exported {report.path} ({report.meta.task}, {report.meta.num_classes} classes, "
        f"{report.size_bytes / 1e6:.1f} MB, {report.exporter}) in {report.seconds:.1f} s; "
        f"parity vs PyTorch: max abs diff {report.max_abs_diff:.2e}"
    )
    if report.parity is not None:
        p = report.parity
        out.print(
            f"parity on {p.images} images: mean abs diff {p.mean_abs_diff:.2e}, {p.agreement_metric}: {p.agreement:.2%}",
            highlight=False, soft_wrap=True,
        )
    _graph_edits(dest, nms_options, preprocess_in_graph, fp16)


NMS_HELP = "Add NMS to the graph: onnx (runs on ONNX Runtime and TensorRT) or efficient (EfficientNMS_TRT, TensorRT only)."
PRE_HELP = "Input becomes uint8 NHWC BGR; cast, color order, normalization and layout happen in the graph."
FP16_HELP = "Mixed-precision FP16 graph (I/O and sensitive ops FP32): how TensorRT 11 takes FP16; runs on ONNX Runtime."


def _graph_edits(path: Path, nms: Any, preprocess_in_graph: bool, fp16: bool) -> None:
    """Apply the requested ONNX-to-ONNX edits in place (atomically) and say what the graph now holds."""
    if nms is None and not preprocess_in_graph and not fp16:
        return
    from edgecv.export.convert import convert_onnx, describe_edits

    meta = convert_onnx(path, path, nms=nms, preprocess_in_graph=preprocess_in_graph, fp16=fp16)
    for line in describe_edits(meta):
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
        raise ConfigError(f"{model} not found", hint="check the path")
    nms_options = NmsOptions(nms, nms_iou, nms_conf, max_det) if nms is not None else None
    dest = output or model.with_name(model.stem + (".fp16.onnx" if fp16 else ".conv.onnx"))
    extra_ops = [op for op in (keep_fp32 or "").replace(" ", "").split(",") if op]
    meta = convert_onnx(model, dest, nms=nms_options, preprocess_in_graph=preprocess_in_graph, fp16=fp16, keep_fp32_ops=extra_ops)
    out.print(f"converted {model} -> {dest} ({meta.precision})")
    for line in describe_edits(meta):
        out.print(line, highlight=False)


# ---------------------------------------------------------------- calibrate
@app.command()
@handle_errors
def calibrate(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX model.")],
    data: Annotated[Path, typer.Argument(help="Calibration images: folder/glob, video, or COCO/YOLO dataset (labels make the gate use mAP/mIoU).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="INT8 graph (default MODEL.int8.onnx; MODEL.int8.cpu.onnx for --target cpu).")] = None,
    num: Annotated[int, typer.Option(help="Calibration images (fewer if DATA has fewer).")] = 512,
    method: Annotated[str, typer.Option(help="entropy (TensorRT's KL), percentile, minmax, or all (compare on held-out accuracy, keep the best).")] = "percentile",
    percentile: Annotated[float, typer.Option(help="Percentile of |x| for --method percentile.")] = 99.99,
    target: Annotated[str, typer.Option(help="tensorrt (symmetric INT8 Q/DQ for TensorRT 10/11), cpu (UINT8 for ONNX Runtime CPU), or both.")] = "tensorrt",
    max_drop: Annotated[float | None, typer.Option(help="Accuracy gate: return the most sensitive layers to float until the drop is <= this many mAP/mIoU points.", rich_help_panel="Accuracy")] = None,
    holdout: Annotated[float, typer.Option(help="Share of DATA held out for accuracy (never calibrated on); 0: no accuracy check. A value >= 1 is a count.", rich_help_panel="Accuracy")] = 0.2,
    val: Annotated[Path | None, typer.Option(help="A separate held-out set instead of --holdout (labelled dataset, or images: agreement with FP32).", rich_help_panel="Accuracy")] = None,
    subset: Annotated[int, typer.Option(help="Held-out images for the gate's quick trials (then confirmed on all).", rich_help_panel="Accuracy")] = 64,
    quantize_tail: Annotated[bool, typer.Option("--quantize-tail", help="Also quantize the output tail (box decode, score concat, sigmoid). Usually harms accuracy.", rich_help_panel="Accuracy")] = False,
    every: Annotated[int | None, typer.Option(help="Video: take every k-th frame (default: spread over the video).")] = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed for the calibration/held-out split.")] = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not write the TensorRT 10 calibration cache (MODEL.calib).")] = False,
    bench_iterations: Annotated[int, typer.Option(help="Latency iterations per model (ONNX Runtime CPU); 0 skips latency.")] = 50,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.")] = None,
    task: Annotated[str | None, typer.Option(help="Task of a model without edgecv metadata: detect or segment.", rich_help_panel="Foreign models")] = None,
    names: Annotated[Path | None, typer.Option(help="Class names file of a model without edgecv metadata.", rich_help_panel="Foreign models")] = None,
    imgsz: Annotated[str | None, typer.Option(help="Input size H,W of a model without edgecv metadata.", rich_help_panel="Foreign models")] = None,
) -> None:
    """INT8: calibrate on images, write Q/DQ ONNX (+ TensorRT cache), and check accuracy and latency against FP32.

    Example: edgecv calibrate models/shapes-det.onnx data/shapes --max-drop 1
    """
    from edgecv._optional import require

    require("onnx")
    from edgecv.log import stage_progress
    from edgecv.quant.calibrate import CalibrateOptions, calibration_meta
    from edgecv.quant.calibrate import calibrate as run_calibrate

    size = None
    if imgsz:
        parts = _int_list(imgsz, "--imgsz") or []
        size = (parts[0], parts[-1])
    if not model.is_file():
        raise ConfigError(f"{model} not found", hint="pass the FP32 .onnx that `edgecv export` wrote")
    meta = calibration_meta(model, task=task, names=_names(names), imgsz=size)
    options = CalibrateOptions(
        num=num, method=method, percentile=percentile, target=target, max_drop=max_drop,
        holdout=int(holdout) if holdout >= 1 else holdout, val=val, subset=subset, every=every, seed=seed,
        keep_tail=not quantize_tail, cache=not no_cache, bench_iterations=bench_iterations, threads=threads,
    )  # fmt: skip
    with stage_progress(_state["quiet"]) as stages:
        report = run_calibrate(model, data, options, output=output, meta=meta, stages=stages)
    _print_calibration(report)


def _print_calibration(report: Any) -> None:
    from rich.table import Table

    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    data = report.data
    out.print(
        f"calibrated on {data['calibration_images']} images; accuracy on {data['holdout_images']} held-out images"
        + ("" if data["labelled"] else " (no labels: agreement with the FP32 model)"),
        highlight=False, soft_wrap=True,
    )
    table = Table(title=f"INT8 vs FP32 ({report.metric or 'accuracy not measured'}, points)", title_justify="left")
    for column in ("graph", "method", "score", "drop", "float layers", "infer p50 ms", "e2e p50 ms", "speed-up"):
        table.add_column(column, justify="left" if column in ("graph", "method") else "right")
    latency = {row["model"]: row for row in report.latency}
    fp32_row = latency.get(str(report.model), {})
    table.add_row(
        "FP32", "-", fmt(report.fp32_score), "-", "-", fmt(fp32_row.get("infer_p50_ms")), fmt(fp32_row.get("e2e_p50_ms")), "1.00x" if fp32_row else "-"
    )
    for t in report.targets:
        row = latency.get(str(t.path), {})
        drop = None if t.score is None or report.fp32_score is None else report.fp32_score - t.score
        speed = row.get("speedup")
        table.add_row(
            f"INT8 {t.target}", t.method, fmt(t.score), fmt(drop), str(len(t.kept_float_layers)),
            fmt(row.get("infer_p50_ms")), fmt(row.get("e2e_p50_ms")), "-" if speed is None else f"{speed:.2f}x",
        )  # fmt: skip
    out.print(table)
    for t in report.targets:
        out.print(f"INT8 {t.target}: {t.path}", highlight=False, soft_wrap=True)
    for t in report.targets:
        if len(t.method_scores) > 1:
            out.print(f"{t.target}: methods " + ", ".join(f"{m} {v:.2f}" for m, v in t.method_scores.items()), highlight=False)
        if t.gate is not None and t.plain_score is not None:
            out.print(
                f"{t.target}: plain INT8 {t.plain_score:.2f}; gate (--max-drop {report.max_drop}) kept "
                f"{len(t.kept_float_layers)} layers float" + (f": {', '.join(t.kept_float_layers[:6])}" if t.kept_float_layers else "")
                + ("" if t.gate.get("passed", True) else "  [bold red]limit not met[/]"),
                highlight=False, soft_wrap=True,
            )
    if report.cache:
        out.print(f"TensorRT 10 calibration cache: {report.cache}")
    out.print(f"report: {report.report_path}")


# ---------------------------------------------------------------- prune
@app.command()
@handle_errors
def prune(
    model: Annotated[str, typer.Argument(help="edgecv checkpoint (.pt) or shipped model name (shapes-det, shapes-seg). Prune before export.")],
    ratio: Annotated[float | None, typer.Option(help="Share of channels to remove, in (0, 1).")] = None,
    target_speedup: Annotated[float | None, typer.Option(help="Latency-aware: prune in steps until ONNX Runtime measures this speed-up (e.g. 1.3).")] = None,
    step: Annotated[float, typer.Option(help="Ratio step of --target-speedup.")] = 0.1,
    max_ratio: Annotated[float, typer.Option(help="Largest ratio --target-speedup tries.")] = 0.8,
    importance: Annotated[str, typer.Option(help="l1, l2 (group magnitude), bn (BatchNorm scale), lamp, or taylor (gradients on shapes data).")] = "l2",
    global_pruning: Annotated[bool, typer.Option("--global", help="Rank channels across the whole network instead of per layer.")] = False,
    round_to: Annotated[int, typer.Option(help="Keep channel counts multiples of this (1: exact ratio).")] = 8,
    ignore: Annotated[str | None, typer.Option(help="Comma-separated layer-name globs never to prune (heads are protected already), e.g. 'stem.*'.")] = None,
    sparsity: Annotated[str | None, typer.Option(help="2:4: zero 2 of every 4 input-channel weights (sparse tensor cores, TensorRT --sparsity).")] = None,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tune epochs (50 steps of 16 scenes each) on synthetic shapes after pruning (shipped architectures); 0 skips.")] = 20,
    finetune_pool: Annotated[int, typer.Option(help="Scenes per fine-tune epoch.")] = 800,
    distill: Annotated[float, typer.Option(help="Weight of distillation from the unpruned model while fine-tuning (0: labels only).")] = 1.0,
    val: Annotated[Path | None, typer.Option(help="Held-out labelled dataset (default for shapes models: 100 synthetic images, seed 1234).")] = None,
    val_images: Annotated[int, typer.Option(help="Synthetic held-out images when --val is not given.")] = 100,
    bench_iterations: Annotated[int, typer.Option(help="Latency iterations per model.")] = 100,
    exporter: Annotated[str, typer.Option(help="torch.onnx exporter for the pruned ONNX: dynamo or torchscript.")] = "dynamo",
    threads: Annotated[int | None, typer.Option(help="Threads for ONNX Runtime and fine-tuning.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Pruned checkpoint (default MODEL.pruned.pt; .onnx and .json next to it).")] = None,
) -> None:
    """Prune channels (and/or 2:4 sparsify), fine-tune, and report params, MACs, measured latency and accuracy.

    Example: edgecv prune shapes-det --target-speedup 1.3
    """
    from edgecv._optional import require

    require("torch")
    require("torch_pruning")
    from edgecv.log import stage_progress
    from edgecv.optimize.job import PruneOptions, run_prune

    options = PruneOptions(
        ratio=ratio, target_speedup=target_speedup, step=step, max_ratio=max_ratio, importance=importance,
        global_pruning=global_pruning, round_to=round_to if round_to > 1 else None,
        ignore=tuple(p for p in (ignore or "").replace(" ", "").split(",") if p), sparsity=sparsity,
        finetune_epochs=finetune_epochs, finetune_pool=finetune_pool, distill=distill, val=val, val_images=val_images,
        bench_iterations=bench_iterations, exporter=exporter, threads=threads,
    )  # fmt: skip
    with stage_progress(_state["quiet"]) as stages:
        report = run_prune(model, options, output=output, stages=stages)
    _print_prune(report)


def _print_prune(report: Any) -> None:
    from rich.table import Table

    fmt = lambda v, spec=".2f": "-" if v is None else format(v, spec)  # noqa: E731
    if report.curve:
        curve = Table(title="ratio -> MACs, latency, accuracy (before fine-tune, fast exporter)", title_justify="left")
        for column in ("ratio", "params", "MACs", "infer p50 ms", "speed-up", report.metric or "score"):
            curve.add_column(column, justify="right")
        base = report.stages[0].macs
        for s in report.curve:
            curve.add_row(fmt(s.ratio), f"{s.params / 1e6:.3f} M", f"{s.macs / 1e9:.3f} G ({s.macs / base:.0%})", fmt(s.infer_ms), fmt(s.speedup, ".2f") + "x", fmt(s.score))
        out.print(curve)
    table = Table(title=f"{report.arch}: pruning report ({report.metric or 'accuracy not measured'})", title_justify="left")
    for column in ("stage", "ratio", "params", "MACs", "infer p50 ms", "e2e p50 ms", "speed-up", "score"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in report.stages:
        table.add_row(
            s.name, fmt(s.ratio), f"{s.params / 1e6:.3f} M", f"{s.macs / 1e9:.3f} G", fmt(s.infer_ms), fmt(s.e2e_ms),
            "-" if s.speedup is None else f"{s.speedup:.2f}x", fmt(s.score),
        )  # fmt: skip
    out.print(table)
    if report.sparsity:
        sp = report.sparsity
        out.print(f"2:4 sparsity: {sp['layers']} layers masked; exported ONNX: {sp['conv_2_4']} Conv weights hold 2:4, {sp['conv_dense']} dense")
    out.print(f"wrote {report.checkpoint}, {report.onnx} and {report.report_path}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- build-engine
@app.command("build-engine")
@handle_errors
def build_engine_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model (FP32, FP16 from convert, or INT8 Q/DQ from calibrate).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Engine file (default MODEL.engine; the manifest goes to MODEL.engine.json).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16: an FP32 graph is converted to mixed-precision FP16 first (precision lives in the graph).", rich_help_panel="Precision")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="INT8: needs the Q/DQ graph from `edgecv calibrate` (or --calib-cache on TensorRT 10).", rich_help_panel="Precision")] = False,
    best: Annotated[bool, typer.Option("--best", help="TensorRT 10: let the builder pick FP16/INT8 per layer; TensorRT 11: the graph as given.", rich_help_panel="Precision")] = False,
    calib: Annotated[Path | None, typer.Option(help="With --int8 on an FP32 graph: calibrate on these images first (as `edgecv calibrate`), then build from MODEL.int8.onnx.", rich_help_panel="Precision")] = None,
    max_drop: Annotated[float | None, typer.Option(help="With --calib: the accuracy gate of `edgecv calibrate` (points).", rich_help_panel="Precision")] = None,
    calib_cache: Annotated[Path | None, typer.Option(help="TensorRT 10 implicit INT8 from this calibration cache (MODEL.calib) and the FP32 graph.", rich_help_panel="Precision")] = None,
    workspace: Annotated[int | None, typer.Option(help="Builder workspace limit in MiB.")] = None,
    dla: Annotated[int | None, typer.Option(help="Build for this DLA core (Jetson AGX/NX Orin).", rich_help_panel="Device")] = None,
    gpu_fallback: Annotated[bool, typer.Option("--gpu-fallback", help="Run layers the DLA cannot on the GPU.", rich_help_panel="Device")] = False,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache file, read and updated (faster rebuilds).")] = None,
    sparsity: Annotated[bool, typer.Option("--sparsity", help="Use 2:4 sparse weights where they hold the pattern (edgecv prune --sparsity 2:4).")] = False,
    builder_level: Annotated[int | None, typer.Option(help="Builder optimization level 0-5 (TensorRT default 3).")] = None,
    version_compatible: Annotated[bool, typer.Option("--version-compatible", help="Engine loadable by newer TensorRT runtimes (e.g. a 10.x engine on 11).", rich_help_panel="Device")] = False,
    hardware_compat: Annotated[str | None, typer.Option(help="ampere+ (any Ampere or newer GPU) or same-cc.", rich_help_panel="Device")] = None,
    batch: Annotated[str | None, typer.Option(help="Batch profile MIN:OPT:MAX (default: the model's --dynamic-batch range).")] = None,
) -> None:
    """Build a TensorRT engine (plan + manifest) from an ONNX model.

    Example: edgecv build-engine models/shapes-det.onnx --fp16 -o shapes-det.engine
    """
    from edgecv.engine.builder import BuildOptions, build_engine
    from edgecv.log import stage_progress

    chosen = [name for name, on in (("fp16", fp16), ("int8", int8), ("best", best)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"pick one precision, got --{' --'.join(chosen)}")
    if calib is not None or max_drop is not None:
        if not int8 or calib is None:
            raise ConfigError("--calib DATA (and --max-drop) make the INT8 graph for --int8", hint="edgecv build-engine MODEL.onnx --int8 --calib IMAGES")
        from edgecv.engine.trt_compat import import_tensorrt
        from edgecv.quant.calibrate import CalibrateOptions
        from edgecv.quant.calibrate import calibrate as run_calibrate

        import_tensorrt()  # fail before calibrating, not after
        with stage_progress(_state["quiet"]) as stages:
            calibration = run_calibrate(model, calib, CalibrateOptions(target="tensorrt", max_drop=max_drop), stages=stages)
        _print_calibration(calibration)
        model = calibration.targets[0].path
        out.print(f"building from {model}", highlight=False)
    options = BuildOptions(
        precision=chosen[0] if chosen else "auto", workspace_mb=workspace, dla_core=dla, gpu_fallback=gpu_fallback,
        timing_cache=timing_cache, sparsity=sparsity, builder_level=builder_level, version_compatible=version_compatible,
        hardware_compat=hardware_compat, calib_cache=calib_cache, batch=_batch_range(batch) if batch else None,
    )  # fmt: skip
    dest = output or model.with_suffix(".engine")
    with stage_progress(_state["quiet"]) as stages:
        bars: dict[str, Callable[[int, int], None]] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = stages(phase, total)
            bars[phase](done, total)

        report = build_engine(model, dest, options, progress=progress)
    for note in report.notes:
        out.print(note, highlight=False)
    out.print(f"built {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB) in {report.seconds:.0f} s; manifest {report.manifest}")


# ---------------------------------------------------------------- info
@app.command()
@handle_errors
def info(
    model: Annotated[Path, typer.Argument(help="Model file (.onnx, .engine).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a model knows about itself: task, classes, preprocessing, inputs and outputs."""
    from edgecv.artifact import describe_model

    details = describe_model(model)
    if as_json:
        out.print_json(json.dumps(details))
        return
    from rich.table import Table

    table = Table(title=str(model), show_header=False, title_justify="left")
    for key, value in details.items():
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
            value = "\n".join(", ".join(f"{k}={v}" for k, v in item.items()) for item in value)
        elif isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        table.add_row(key, str(value))
    out.print(table)


# ---------------------------------------------------------------- eval
@app.command("eval")
@handle_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file (.onnx, .engine).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="COCO-format or YOLO-txt dataset folder (or a COCO .json).")],
    conf: Annotated[float, typer.Option(help="Score threshold (low for mAP).")] = 0.001,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.6,
    max_images: Annotated[int | None, typer.Option(help="Evaluate the first N images only.")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON.")] = None,
) -> None:
    """Measure accuracy: COCO mAP for detectors, mIoU for segmenters.

    Example: edgecv eval models/shapes-det.onnx --data data/shapes-val
    """
    import edgecv
    from edgecv.artifact import atomic_write_bytes
    from edgecv.bench.accuracy import evaluate as run_eval
    from edgecv.data.datasets import open_dataset

    dataset = open_dataset(data)
    loaded = edgecv.load(model, conf=conf, iou=iou, threads=threads)
    total = min(len(dataset), max_images) if max_images else len(dataset)
    with loaded, progress_bar("eval", total, _state["quiet"]) as update:
        metrics = run_eval(loaded, dataset, progress=update, max_images=max_images)
    _print_metrics(metrics)
    if json_out:
        atomic_write_bytes(json_out, json.dumps(metrics.to_dict(), indent=2).encode())


def _print_metrics(metrics: Any) -> None:
    from rich.table import Table

    data = metrics.to_dict()
    per_class = data.get("per_class_ap") or data.get("per_class_iou") or {}
    table = Table(title="accuracy", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in data.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, int):
            table.add_row(key, str(value))
    if isinstance(per_class, dict):
        for name, value in per_class.items():
            table.add_row(f"  {name}", "-" if value is None or value < 0 else f"{value:.4f}")
    out.print(table)


# ---------------------------------------------------------------- run
@app.command()
@handle_errors
def run(
    model: Annotated[Path | None, typer.Argument(help="Model file (default: the shipped detector).")] = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Video, image, folder, glob, rtsp/http URL or GStreamer pipeline.", rich_help_panel="Input")] = None,
    camera: Annotated[int | None, typer.Option(help="Camera index (V4L2).", rich_help_panel="Input")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace a file at its fps and treat it like a live camera (newest frame, drops counted).", rich_help_panel="Input")] = False,
    reconnect_timeout: Annotated[float, typer.Option(help="Give up on a dropped live source after this many seconds.", rich_help_panel="Input")] = 30.0,
    open_timeout: Annotated[float, typer.Option(help="Network streams: how long opening (and each read) may take, in seconds.", rich_help_panel="Input")] = 5.0,
    save: Annotated[Path | None, typer.Option(help="Write the annotated video (.mp4 / .avi).", rich_help_panel="Output")] = None,
    jsonl: Annotated[Path | None, typer.Option(help="Write one JSON line per frame.", rich_help_panel="Output")] = None,
    show: Annotated[bool, typer.Option(help="Show a window.", rich_help_panel="Output")] = False,
    stats_json: Annotated[Path | None, typer.Option(help="Write the run summary (FPS, per-stage ms) as JSON.", rich_help_panel="Output")] = None,
    conf: Annotated[float, typer.Option(help="Score threshold.", rich_help_panel="Model")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.", rich_help_panel="Model")] = 0.45,
    classes: Annotated[str | None, typer.Option(help="Keep only these class ids, e.g. 0,2.", rich_help_panel="Model")] = None,
    task: Annotated[str | None, typer.Option(help="detect / segment, for ONNX files without edgecv metadata.", rich_help_panel="Model")] = None,
    names: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Class names file, for ONNX files without metadata.", rich_help_panel="Model")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.", rich_help_panel="Model")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT: replay the network as one CUDA graph (static shapes).", rich_help_panel="Model")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after N frames.")] = None,
) -> None:
    """Run a model on a camera, video, stream or images, live.

    With no model and no source, runs the shipped detector on the demo video.
    Example: edgecv run models/shapes-det.onnx --source video.mp4 --save out.mp4
    """
    import edgecv
    from edgecv import assets
    from edgecv.stream.pipeline import install_signal_handlers, run_pipeline
    from edgecv.stream.sinks import JsonlSink, VideoSink, WindowSink
    from edgecv.stream.sources import open_source

    if source is not None and camera is not None:
        raise ConfigError("--source and --camera are exclusive", hint="pass one of them")
    if max_frames is not None and max_frames <= 0:
        raise ConfigError(f"--max-frames must be positive, got {max_frames}")
    if stats_json and not stats_json.parent.is_dir():
        raise ConfigError(f"cannot write {stats_json}: folder {stats_json.parent} does not exist", hint=f"mkdir -p {stats_json.parent}")
    path = _default_model(model)
    options: dict[str, Any] = {"threads": threads}
    if cuda_graph:
        from edgecv.engine.registry import backend_for

        if backend_for(path) != "tensorrt":
            raise ConfigError("--cuda-graph applies to TensorRT engines", hint=f"build one: edgecv build-engine {path}")
        options["cuda_graph"] = True
    loaded = edgecv.load(path, conf=conf, iou=iou, classes=_int_list(classes, "--classes"), task=task, names=_names(names), **options)
    src = None
    sinks: list[Any] = []
    try:
        spec: Any = camera if camera is not None else source
        if spec is None:
            spec = assets.demo_video()
            log.info("no --source: using the demo video %s", spec)
        src = open_source(spec, realtime=realtime, max_reconnect_s=reconnect_timeout, open_timeout_s=open_timeout)
        if save:
            sinks.append(VideoSink(save, fps=src.fps or 30.0, size=src.size))
        if jsonl:
            sinks.append(JsonlSink(jsonl))
        if show:
            sinks.append(WindowSink("edgecv"))
        stop = threading.Event()
        with install_signal_handlers(stop):
            summary = run_pipeline(loaded, src, sinks, max_frames=max_frames, status=_status_printer(), stop_event=stop)
    finally:  # run_pipeline closes them too; this covers a failure before it started (close is idempotent)
        for sink in sinks:
            sink.close()
        if src is not None:
            src.close()
        loaded.close()
    _print_summary(summary, loaded)
    if stats_json:
        from edgecv.artifact import atomic_write_bytes

        atomic_write_bytes(stats_json, json.dumps(summary.to_dict(), indent=2).encode())
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _status_printer() -> Callable[[Any], None] | None:
    if _state["quiet"] or not console.is_terminal:
        return None

    def status(summary: Any) -> None:
        stages = " ".join(f"{name} {mean:.1f}" for name, mean, _, _ in summary.stage_rows() if name != "total")
        console.print(f"\r{summary.frames} frames  {summary.fps:5.1f} FPS  ms: {stages}", end="", highlight=False)

    return status


def _print_summary(summary: Any, model: Any) -> None:
    from rich.table import Table

    if console.is_terminal and not _state["quiet"]:
        console.print()
    table = Table(title=f"{model.path.name}: {summary.frames} frames, {summary.fps:.1f} FPS", title_justify="left")
    for col in ("stage", "mean ms", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for name, mean, p50, p99 in summary.stage_rows():
        table.add_row(name, f"{mean:.2f}", f"{p50:.2f}", f"{p99:.2f}")
    out.print(table)
    if model.engine.backend == "tensorrt":
        gpu = ["preprocessing: " + ("CUDA kernel (pre = its GPU time + launch)" if getattr(model, "gpu_preprocess", False) else "CPU")]
        gpu.append("CUDA graph: " + ("on" if getattr(model.engine, "cuda_graph", False) else "off"))
        out.print("  " + ", ".join(gpu), highlight=False)
    d = summary.to_dict()
    extras = {k: d[k] for k in ("dropped", "bad_frames", "reconnects") if d.get(k)}
    if extras:
        out.print("  " + ", ".join(f"{k}: {v}" for k, v in extras.items()))


# ---------------------------------------------------------------- bench
@app.command()
@handle_errors
def bench(
    models: Annotated[list[Path], typer.Argument(help="Model files to compare; speed-ups are relative to the first.")],
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Timed iterations per model and batch size.", rich_help_panel="Measurement")] = 100,
    duration: Annotated[float | None, typer.Option(help="Seconds of timed inference per model instead of --iterations.", rich_help_panel="Measurement")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed iterations first.", rich_help_panel="Measurement")] = 10,
    warmup_s: Annotated[float | None, typer.Option("--warmup-s", help="Warm up for this many seconds per model instead.", rich_help_panel="Measurement")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, e.g. 1,4,8 (dynamic-batch models).", rich_help_panel="Measurement")] = "1",
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.", rich_help_panel="Measurement")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT engines replay the network as one CUDA graph.", rich_help_panel="Measurement")] = False,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Frames from a video, image or folder (default: synthetic 640x480 scenes).", rich_help_panel="Measurement")] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Dataset for accuracy columns (mAP / mIoU).", rich_help_panel="Accuracy")] = None,
    max_images: Annotated[int | None, typer.Option(help="Evaluate accuracy on the first N images only.", rich_help_panel="Accuracy")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Also run the real run loop on --source (a video) against bare inference.", rich_help_panel="Loop")] = False,
    repeats: Annotated[int, typer.Option(help="Alternating loop/bare repeats for --loop.", rich_help_panel="Loop")] = 3,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON (schema edgecv.bench/1).", rich_help_panel="Output")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one CSV row per model and batch size.", rich_help_panel="Output")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: latency distribution and latency vs accuracy (needs edgecv[plot]).", rich_help_panel="Output")] = None,
) -> None:
    """Measure latency (p50/p90/p99 per stage, FPS) of models side by side, with accuracy when --data is given.

    Example: edgecv bench model.onnx model.fp16.onnx model.int8.onnx --data data/val --json bench.json
    """
    from edgecv._optional import require
    from edgecv.bench.environment import collect_environment, format_environment
    from edgecv.bench.latency import BenchConfig, add_accuracy, benchmark, frames_from, synthetic_frames
    from edgecv.bench.report import render_loop_table, render_table, summary_lines, write_csv, write_json, write_plot

    for path in (json_out, csv_out, plot):
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"cannot write {path}: folder {path.parent} does not exist", hint=f"mkdir -p {path.parent}")
    if plot is not None:
        require("matplotlib", extra="plot")
    if loop and (source is None or not Path(source).is_file()):
        raise ConfigError("--loop needs --source VIDEO", hint="e.g. edgecv bench model.onnx --loop --source video.mp4")
    cfg = BenchConfig(
        warmup=warmup, warmup_s=warmup_s, iterations=iterations, duration_s=duration, batch_sizes=tuple(_int_list(batch, "--batch") or [1]), threads=threads,
        cuda_graph=cuda_graph,
    )
    frames = frames_from(source) if source else synthetic_frames()
    environment = collect_environment()
    with progress_bar("bench", None, _state["quiet"]) as update:
        report = benchmark([str(m) for m in models], cfg, frames, environment=environment, progress=update)
    if data is not None:
        with progress_bar("accuracy", None, _state["quiet"]) as update:
            add_accuracy(report, data, max_images=max_images, progress=update)
    if loop:
        from edgecv.bench.loop import loop_benchmark

        for record in report.results:
            if record.ok and record.batch == cfg.batch_sizes[0]:
                report.loop.append(loop_benchmark(record.model, str(source), threads=threads, repeats=repeats))
    for line in format_environment(environment):
        out.print(line, highlight=False)
    out.print(render_table(report))
    loop_table = render_loop_table(report)
    if loop_table is not None:
        out.print(loop_table)
    for line in summary_lines(report):
        out.print(line, highlight=False)
    if json_out:
        write_json(report, json_out)
    if csv_out:
        write_csv(report, csv_out)
    if plot:
        write_plot(report, plot)
    if not any(r.ok for r in report.results):
        raise typer.Exit(1)


# ---------------------------------------------------------------- synthetic data
@app.command()
@handle_errors
def shapes(
    output: Annotated[Path, typer.Argument(help="Output folder.")],
    images: Annotated[int, typer.Option(help="Number of images.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (the training set uses 0; pick another for held-out data).")] = 1,
    video: Annotated[bool, typer.Option(help="Also write a demo video (demo.mp4 + ground truth).")] = False,
) -> None:
    """Generate a synthetic shapes dataset (COCO boxes, instance and semantic masks) for tests and demos."""
    from edgecv.data.synthetic import write_coco_dataset, write_demo_video

    if images <= 0:
        raise ConfigError(f"--images must be positive, got {images}")
    output.mkdir(parents=True, exist_ok=True)
    with progress_bar("shapes", images, _state["quiet"]) as update:
        ann = write_coco_dataset(output, images, seed=seed, progress=update)
    out.print(f"wrote {images} images and {ann}")
    if video:
        path = write_demo_video(output / "demo.mp4", seed=seed)
        out.print(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
