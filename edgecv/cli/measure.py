"""`edgecv eval` and `edgecv bench`: accuracy and latency."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import IMGSZ_HELP, SQUARE_HELP, imgsz_arg, int_list, threads_arg
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
    max_det: Annotated[int, typer.Option(help="COCO maxDets: detections scored per image and class (COCO: 100; dense scenes need more).")] = 100,
    imgsz: Annotated[str | None, typer.Option(help=IMGSZ_HELP)] = None,
    square: Annotated[bool, typer.Option("--square", help=SQUARE_HELP)] = False,
    mask_threshold: Annotated[float | None, typer.Option(help="One-channel segmenters: foreground where the probability is > this (default 0.5).")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON.")] = None,
    triton: Annotated[str | None, typer.Option(help="Run the network on this Triton server (http://HOST:8000 or grpc://HOST:8001); MODEL is its name there.")] = None,
) -> None:
    """Measure accuracy: COCO mAP for detectors, mIoU for segmenters.

    Example: edgecv eval models/shapes-det.onnx --data data/shapes-val
    """
    import edgecv
    from edgecv.artifact import atomic_write_bytes, check_writable
    from edgecv.bench.accuracy import evaluate as run_eval
    from edgecv.data.datasets import open_dataset

    if max_det <= 0:
        raise ConfigError(f"--max-det must be positive, got {max_det}", hint="COCO uses 100")
    size = imgsz_arg(imgsz)
    options = {"threads": threads_arg(threads)} if threads is not None else {}
    if options:
        from edgecv.engine.registry import backend_for

        if backend_for(model) == "tensorrt":
            raise ConfigError("--threads sets ONNX Runtime's CPU threads; a TensorRT engine runs on the GPU", hint="leave out --threads")
    if json_out:
        check_writable(json_out, "--json")

    dataset = open_dataset(data)
    # the model keeps at least max_det boxes per image, so the per-class cut is the evaluator's
    loaded = edgecv.load(
        model, conf=conf, iou=iou, max_det=max(300, max_det), imgsz=size, square=square, mask_threshold=mask_threshold,
        **options, **({"triton": triton} if triton else {}),
    )
    total = min(len(dataset), max_images) if max_images else len(dataset)
    with loaded, progress_bar("eval", total, state["quiet"]) as update:
        metrics = run_eval(loaded, dataset, progress=update, max_images=max_images, max_det=max_det)
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
    imgsz: Annotated[str | None, typer.Option(help=IMGSZ_HELP, rich_help_panel="Measurement")] = None,
    square: Annotated[bool, typer.Option("--square", help=SQUARE_HELP, rich_help_panel="Measurement")] = False,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT engines replay the network as one CUDA graph.", rich_help_panel="Measurement")] = False,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Frames from a video, image or folder (default: synthetic 640x480 scenes).", rich_help_panel="Measurement")] = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Dataset for accuracy columns (mAP / mIoU).", rich_help_panel="Accuracy")] = None,
    max_images: Annotated[int | None, typer.Option(help="Evaluate accuracy on the first N images only.", rich_help_panel="Accuracy")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Also run the real run loop on --source (a video) against bare inference.", rich_help_panel="Loop")] = False,
    repeats: Annotated[int, typer.Option(help="Alternating repeats for --loop and --sources.", rich_help_panel="Loop")] = 3,
    inflight: Annotated[int | None, typer.Option(help="--loop: frames inferred at once (default: what `edgecv run` chooses for a video file).", rich_help_panel="Loop")] = None,
    sources: Annotated[int | None, typer.Option("--sources", help="Also run the loop on N sources of the same frames: batched (one call per batch) vs one call per frame; prints the ratio.", rich_help_panel="Loop")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON (schema edgecv.bench/1).", rich_help_panel="Output")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one CSV row per model and batch size.", rich_help_panel="Output")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: latency distribution and latency vs accuracy (needs edgecv[plot]).", rich_help_panel="Output")] = None,
    triton: Annotated[str | None, typer.Option(help="Run the networks on this Triton server (http://HOST:8000 or grpc://HOST:8001); MODELS are names there.", rich_help_panel="Measurement")] = None,
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
    if sources is not None and sources < 2:
        raise ConfigError(f"--sources must be >= 2, got {sources}", hint="e.g. --sources 4")
    if inflight is not None and (not loop or inflight < 1):
        raise ConfigError(f"--inflight {inflight}: " + ("must be at least 1" if loop else "applies to --loop"), hint="e.g. --loop --inflight 2")
    if loop and (source is None or not Path(source).is_file()):
        raise ConfigError("--loop needs --source VIDEO", hint="e.g. edgecv bench model.onnx --loop --source video.mp4")
    cfg = BenchConfig(
        warmup=warmup, warmup_s=warmup_s, iterations=iterations, duration_s=duration, batch_sizes=tuple(int_list(batch, "--batch") or [1]), threads=threads,
        cuda_graph=cuda_graph, triton=triton, imgsz=imgsz_arg(imgsz), square=square,
    )
    if triton and (loop or cuda_graph):
        raise ConfigError("--loop and --cuda-graph run local models; they do not apply with --triton", hint="drop them")
    if threads is not None:
        gpu = [m.name for m in models if m.suffix.lower() in (".engine", ".plan")]
        if len(gpu) == len(models):
            raise ConfigError("--threads sets ONNX Runtime's CPU threads; every model here is a TensorRT engine", hint="leave out --threads")
        if gpu:
            log.warning("--threads has no effect on the TensorRT engine(s) %s (it applies to the ONNX models)", ", ".join(gpu))
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
                report.loop.append(loop_benchmark(record.model, str(source), threads=threads, inflight=inflight, repeats=repeats))
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
    if sources is not None:
        from edgecv.bench.multisource import multisource_benchmark

        for path in models:
            ms = multisource_benchmark(path, frames, sources=sources, threads=threads, repeats=repeats)
            out.print(
                f"{path.name}: {sources} sources x {ms.frames} frames, run loop: batched {ms.batched_fps:.1f} FPS "
                f"(mean batch {ms.mean_batch:.2f}) vs one call per frame {ms.sequential_fps:.1f} FPS: ratio {ms.ratio:.2f} "
                f"(medians of {repeats}, alternating)",
                highlight=False,
            )
    if json_out:
        write_json(report, json_out)
    if csv_out:
        write_csv(report, csv_out)
    if plot:
        write_plot(report, plot)
    if not any(r.ok for r in report.results):  # every row failed: exit like the failure (4 for missing models)
        codes = {r.exit_code or 1 for r in report.results}
        raise typer.Exit(codes.pop() if len(codes) == 1 else 1)


