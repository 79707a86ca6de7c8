"""`edgecv calibrate`: INT8 Q/DQ graphs with an accuracy gate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import imgsz_arg, names_arg, threads_arg
from edgecv.errors import ArtifactError
from edgecv.log import out

log = logging.getLogger("edgecv.cli")

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
    imgsz: Annotated[str | None, typer.Option(help="Input size (one number or H,W): the size the model runs at; needed for a dynamic model without edgecv metadata.", rich_help_panel="Foreign models")] = None,
) -> None:
    """INT8: calibrate on images, write Q/DQ ONNX (+ TensorRT cache), and check accuracy and latency against FP32.

    Example: edgecv calibrate models/shapes-det.onnx data/shapes --max-drop 1
    """
    from edgecv._optional import require

    require("onnx")
    from edgecv.log import stage_progress
    from edgecv.quant.calibrate import CalibrateOptions, calibration_meta
    from edgecv.quant.calibrate import calibrate as run_calibrate

    size = imgsz_arg(imgsz)
    threads_arg(threads)
    if not model.is_file():
        raise ArtifactError(f"{model} not found", hint="pass the FP32 .onnx that `edgecv export` wrote")
    if output is not None:
        from edgecv.artifact import check_writable

        check_writable(output, "INT8 model")
    meta = calibration_meta(model, task=task, names=names_arg(names), imgsz=size)
    options = CalibrateOptions(
        num=num, method=method, percentile=percentile, target=target, max_drop=max_drop,
        holdout=int(holdout) if holdout >= 1 else holdout, val=val, subset=subset, every=every, seed=seed,
        keep_tail=not quantize_tail, cache=not no_cache, bench_iterations=bench_iterations, threads=threads,
    )  # fmt: skip
    with stage_progress(state["quiet"]) as stages:
        report = run_calibrate(model, data, options, output=output, meta=meta, stages=stages)
    print_calibration(report)


def print_calibration(report: Any) -> None:
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


