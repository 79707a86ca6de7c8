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
    max_drop: Annotated[float | None, typer.Option(help="Accuracy gate: the mAP/mIoU drop allowed, in points (layers go back to float until every limit holds).", rich_help_panel="Accuracy")] = None,
    min_recall: Annotated[float | None, typer.Option(help="Gate: share of FP32's detections at --conf that INT8 must still find (same class, IoU >= 0.5). Default 0.95 when the gate runs.", rich_help_panel="Accuracy")] = None,
    min_precision: Annotated[float | None, typer.Option(help="Gate: share of INT8's detections at --conf that FP32 also made. Default 0.95.", rich_help_panel="Accuracy")] = None,
    max_score_drop: Annotated[float | None, typer.Option(help="Gate: largest mean score drop of matched detections (0-1 score units). Default 0.05.", rich_help_panel="Accuracy")] = None,
    min_pixel_agreement: Annotated[float | None, typer.Option(help="Gate (segmenters): share of pixels with FP32's class. Default 0.98.", rich_help_panel="Accuracy")] = None,
    conf: Annotated[float, typer.Option(help="The run's score threshold: the operating point fidelity is measured at.", rich_help_panel="Accuracy")] = 0.25,
    iou: Annotated[float, typer.Option(help="The run's NMS IoU threshold.", rich_help_panel="Accuracy")] = 0.45,
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
        num=num, method=method, percentile=percentile, target=target, max_drop=max_drop, min_recall=min_recall,
        min_precision=min_precision, max_score_drop=max_score_drop, min_pixel_agreement=min_pixel_agreement, conf=conf, iou=iou,
        holdout=int(holdout) if holdout >= 1 else holdout, val=val, subset=subset, every=every, seed=seed,
        keep_tail=not quantize_tail, cache=not no_cache, bench_iterations=bench_iterations, threads=threads,
    )  # fmt: skip
    with stage_progress(state["quiet"]) as stages:
        report = run_calibrate(model, data, options, output=output, meta=meta, stages=stages)
    print_calibration(report)
    check_verdict(report)


SHOWN_LAYERS = 12


def check_verdict(report: Any) -> None:
    """Exit non-zero (one line) when the gate ran and a graph did not pass it."""
    from edgecv.errors import CalibrationError

    for t in report.targets:
        if t.verdict == "failed":
            raise CalibrationError(
                f"INT8 {t.target} fails the accuracy gate at the operating point ({_limits_text(report)}); written anyway to {t.path} for inspection",
                hint="try --method all, more or more varied calibration images, or --target cpu; see " + str(report.report_path),
            )
        if t.verdict == "inconclusive":
            short = t.uncertainty["short"]
            worst = max(short, key=lambda row: row["images_needed"] if row["images_needed"] >= 0 else 10**9)
            n = t.uncertainty["images"]
            more = "many more" if worst["images_needed"] < 0 else f"about {max(worst['images_needed'] - n, 1)} more"
            why = (
                f"fewer than {worst['images_needed']} images support no interval"
                if worst["quantity"] == "images"
                else f"the 95% interval of {worst['quantity']} is {worst['width']:g} wide, more than the {worst['tolerance']:g} allowed"
            )
            raise CalibrationError(
                f"INT8 {t.target} passes on {n} held-out images ({t.uncertainty.get('reference_detections') or 0} reference detections), "
                f"but {why}: not enough held-out data to show it (kept as {t.path}, not as the INT8 model)",
                hint=f"give {more} held-out images: --val FOLDER, a larger --holdout with more images, or frames of a video with --every K",
            )


def _limits_text(report: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in (report.limits or {}).items())


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
    if any(t.fidelity for t in report.targets):
        out.print(fidelity_table(report))
    for t in report.targets:
        out.print(f"INT8 {t.target}: {t.path}", highlight=False, soft_wrap=True)
    for t in report.targets:
        if len(t.method_scores) > 1:
            out.print(f"{t.target}: methods " + ", ".join(f"{m} {v:.2f}" for m, v in t.method_scores.items()), highlight=False)
        if t.gate is not None and t.plain_score is not None:
            out.print(
                f"{t.target}: plain INT8 {t.plain_score:.2f}; gate ({_limits_text(report)}) kept "
                f"{len(t.kept_float_layers)} layers float" + float_layers_text(t.kept_float_layers, report.report_path)
                + {"passed": "  [green]passed[/]", "failed": "  [bold red]failed[/]", "inconclusive": "  [bold yellow]inconclusive: too little held-out data[/]"}.get(t.verdict or "", ""),
                highlight=False, soft_wrap=True,
            )  # fmt: skip
    if report.cache:
        out.print(f"TensorRT 10 calibration cache: {report.cache}")
    split = ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items() if v >= 0.05)
    out.print(f"time (s): {split}", highlight=False, soft_wrap=True)
    out.print(f"report: {report.report_path}")


def float_layers_text(layers: list[str], report_path: Any) -> str:
    """": a, b, c" — every layer, or the first SHOWN_LAYERS and "and N more (all in REPORT)"."""
    if not layers:
        return ""
    text = ": " + ", ".join(layers[:SHOWN_LAYERS])
    if len(layers) > SHOWN_LAYERS:
        text += f" and {len(layers) - SHOWN_LAYERS} more (all in {report_path}, and `edgecv info MODEL.int8.onnx`)"
    return text


FIDELITY_ROWS = {
    "detect": (
        ("recall", "recall (FP32 detections INT8 still finds)", 3, False),
        ("precision", "precision (INT8 detections FP32 also made)", 3, False),
        ("f1", "F1", 3, False),
        ("mean_score_change", "mean score change, matched", 3, True),
        ("worst_score_change", "worst score change, matched", 3, True),
        ("mean_iou", "mean IoU, matched", 3, False),
    ),
    "segment": (
        ("pixel_agreement", "pixel agreement with FP32", 4, False),
        ("miou", "mIoU vs FP32 (points)", 2, False),
    ),
}


def fidelity_table(report: Any) -> Any:
    """At the operating point: each INT8 graph vs FP32 (and FP32/INT8 vs labels), with 95% bootstrap intervals over images."""
    from rich.table import Table

    conf, iou = report.options.get("conf"), report.options.get("iou")
    task = "detect" if report.task == "detect" else "segment"
    table = Table(title=f"At the operating point (conf {conf}, NMS IoU {iou}), vs FP32; [95% interval over images]", title_justify="left")
    table.add_column("")
    shown = [t for t in report.targets if t.fidelity]
    for t in shown:
        table.add_column(f"INT8 {t.target}", justify="right")
    limits = report.limits or {}
    if limits:
        table.add_column("gate", justify="left")

    def cell(values: dict[str, Any], key: str, intervals: dict[str, Any], digits: int, signed: bool) -> str:
        value = values.get(key)
        if value is None:
            return "-"
        text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
        if key in intervals:
            low, high = intervals[key]
            text += f" [{low:.{digits}f}, {high:.{digits}f}]"
        return text

    first = shown[0].fidelity or {}
    counts = f"{first.get('images')} images" + (f", {first.get('reference')} FP32 detections" if task == "detect" else "")
    table.add_row("held-out", *[counts for _ in shown], *([""] if limits else []))
    for key, label, digits, signed in FIDELITY_ROWS[task]:
        cells = [cell(t.fidelity or {}, key, (t.uncertainty or {}).get("intervals") or {}, digits, signed) for t in shown]
        table.add_row(label, *cells, *([limits.get(key, "")] if limits else []))
    drops = []
    for t in shown:
        drop = None if t.score is None or report.fp32_score is None else report.fp32_score - t.score
        interval = ((t.uncertainty or {}).get("intervals") or {}).get("drop")
        drops.append("-" if drop is None else f"{drop:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
    table.add_row(f"{report.metric} drop (points)", *drops, *([limits.get("drop", "")] if limits else []))
    if task == "detect" and report.fp32_vs_labels:
        f = report.fp32_vs_labels
        table.add_row("vs labels: FP32 recall / precision", *[f"{f['recall']:.3f} / {f['precision']:.3f}" for _ in shown], *([""] if limits else []))
        table.add_row(
            "vs labels: INT8 recall / precision",
            *[f"{t.vs_labels['recall']:.3f} / {t.vs_labels['precision']:.3f}" if t.vs_labels else "-" for t in shown],
            *([""] if limits else []),
        )
    return table


def int8_lines(info: dict[str, Any]) -> list[str]:
    """What ``edgecv info`` says about an INT8 graph: its calibration, the gate, and every layer kept float."""
    lines = [f"INT8 ({info.get('target')}, {info.get('method')}, {info.get('calibration_images')} calibration images)"]
    if "metric" in info:
        lines.append(f"  {info['metric']}: FP32 {info.get('fp32')}, INT8 {info.get('int8')} on {info.get('holdout_images')} held-out images")
    op = info.get("operating_point") or {}
    if "recall" in op or "pixel_agreement" in op:
        figures = ", ".join(f"{k} {op[k]}" for k in ("recall", "precision", "mean_score_change", "worst_score_change", "pixel_agreement", "miou") if op.get(k) is not None)
        lines.append(f"  at conf {op.get('conf')}, IoU {op.get('iou')} vs FP32: {figures}")
    gate = info.get("gate") or {}
    if gate:
        lines.append(f"  gate: {gate.get('verdict')} (" + ", ".join(f"{k} {v}" for k, v in gate.items() if k != "verdict") + ")")
    layers = info.get("kept_float_layers") or []
    lines.append(f"  {len(layers)} layers kept float" + (":" if layers else ""))
    lines.extend(f"    {layer}" for layer in layers)
    return lines
