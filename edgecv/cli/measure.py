"""`edgecv eval` and `edgecv bench`: accuracy and latency."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import int_list
from edgecv.errors import ConfigError
from edgecv.log import out, progress_bar

log = logging.getLogger("edgecv.cli")

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
    from edgecv.artifact import atomic_write_bytes, check_writable
    from edgecv.bench.accuracy import evaluate as run_eval
    from edgecv.data.datasets import open_dataset

    if json_out:
        check_writable(json_out, "--json")

    dataset = open_dataset(data)
    loaded = edgecv.load(model, conf=conf, iou=iou, threads=threads)
    total = min(len(dataset), max_images) if max_images else len(dataset)
    with loaded, progress_bar("eval", total, state["quiet"]) as update:
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
    from edgecv.artifact import check_writable
    from edgecv.bench.environment import collect_environment, format_environment
    from edgecv.bench.latency import BenchConfig, add_accuracy, benchmark, frames_from, synthetic_frames
    from edgecv.bench.report import (
        error_lines,
        render_loop_table,
        render_table,
        summary_lines,
        write_csv,
        write_json,
        write_plot,
    )

    for path in (json_out, csv_out, plot):
        if path is not None:
            check_writable(path)
    if plot is not None:
        require("matplotlib", extra="plot")
    if loop and (source is None or not Path(source).is_file()):
        raise ConfigError("--loop needs --source VIDEO", hint="e.g. edgecv bench model.onnx --loop --source video.mp4")
    cfg = BenchConfig(
        warmup=warmup, warmup_s=warmup_s, iterations=iterations, duration_s=duration, batch_sizes=tuple(int_list(batch, "--batch") or [1]), threads=threads,
        cuda_graph=cuda_graph,
    )
    frames = frames_from(source) if source else synthetic_frames()
    environment = collect_environment()
    with progress_bar("bench", None, state["quiet"]) as update:
        report = benchmark([str(m) for m in models], cfg, frames, environment=environment, progress=update)
    if data is not None:
        with progress_bar("accuracy", None, state["quiet"]) as update:
            add_accuracy(report, data, max_images=max_images, progress=update)
    if loop:
        from edgecv.bench.loop import loop_benchmark

        for record in report.results:
            if record.ok and record.batch == cfg.batch_sizes[0]:
                report.loop.append(loop_benchmark(record.model, str(source), threads=threads, repeats=repeats))
    for line in format_environment(environment):
        out.print(line, highlight=False)
    out.print(render_table(report))
    for line in error_lines(report):  # unwrapped: a log keeps the whole message and its fix
        out.print(line, highlight=False, markup=False, soft_wrap=True)
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
    if not any(r.ok for r in report.results):  # every row failed: exit like the failure (4 for missing models)
        codes = {r.exit_code or 1 for r in report.results}
        raise typer.Exit(codes.pop() if len(codes) == 1 else 1)


