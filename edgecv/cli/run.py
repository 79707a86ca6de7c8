"""`edgecv run`: the real-time loop."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import IMGSZ_HELP, SQUARE_HELP, default_model, imgsz_arg, int_list, names_arg, threads_arg
from edgecv.errors import EXIT_INTERRUPTED, ConfigError
from edgecv.log import console, out

log = logging.getLogger("edgecv.cli")

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
    conf: Annotated[float | None, typer.Option(help="Score threshold (detectors; default 0.25).", rich_help_panel="Model")] = None,
    iou: Annotated[float | None, typer.Option(help="NMS IoU threshold (detectors; default 0.45).", rich_help_panel="Model")] = None,
    imgsz: Annotated[str | None, typer.Option(help=IMGSZ_HELP, rich_help_panel="Model")] = None,
    square: Annotated[bool, typer.Option("--square", help=SQUARE_HELP, rich_help_panel="Model")] = False,
    mask_threshold: Annotated[float | None, typer.Option(help="One-channel segmenters: foreground where the probability is > this (default 0.5).", rich_help_panel="Model")] = None,
    regions: Annotated[bool, typer.Option("--regions", help="One-channel segmenters: report connected foreground regions as boxes (text, blobs).", rich_help_panel="Model")] = False,
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
    path = default_model(model)
    size = imgsz_arg(imgsz)
    from edgecv.engine.registry import backend_for

    is_trt = backend_for(path) == "tensorrt"
    options: dict[str, Any] = {}
    if threads_arg(threads) is not None:
        if is_trt:
            raise ConfigError("--threads sets ONNX Runtime's CPU threads; a TensorRT engine runs on the GPU", hint="leave out --threads")
        options["threads"] = threads
    if cuda_graph:
        if not is_trt:
            raise ConfigError("--cuda-graph applies to TensorRT engines", hint=f"build one: edgecv build-engine {path}")
        options["cuda_graph"] = True
    thresholds = {k: v for k, v in (("conf", conf), ("iou", iou), ("classes", int_list(classes, "--classes"))) if v is not None}
    loaded = edgecv.load(
        path, task=task, names=names_arg(names), imgsz=size, square=square, mask_threshold=mask_threshold, regions=regions, **thresholds, **options
    )
    if loaded.task != "detect" and thresholds:
        loaded.close()
        given = ", ".join(f"--{k}" for k in thresholds)
        raise ConfigError(f"{given} apply to detectors; {path.name} is a {loaded.task} model", hint=f"leave out {given}")
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
    if state["quiet"] or not console.is_terminal:
        return None

    def status(summary: Any) -> None:
        stages = " ".join(f"{name} {mean:.1f}" for name, mean, _, _ in summary.stage_rows() if name != "total")
        console.print(f"\r{summary.frames} frames  {summary.fps:5.1f} FPS  ms: {stages}", end="", highlight=False)

    return status


def _print_summary(summary: Any, model: Any) -> None:
    from rich.table import Table

    if console.is_terminal and not state["quiet"]:
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


