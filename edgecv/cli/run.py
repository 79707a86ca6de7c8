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
from edgecv.cli.options import default_model, int_list, names_arg
from edgecv.errors import EXIT_INTERRUPTED, ConfigError, SourceError
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
    conf: Annotated[float, typer.Option(help="Score threshold.", rich_help_panel="Model")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.", rich_help_panel="Model")] = 0.45,
    classes: Annotated[str | None, typer.Option(help="Keep only these class ids, e.g. 0,2.", rich_help_panel="Model")] = None,
    task: Annotated[str | None, typer.Option(help="detect / segment, for ONNX files without edgecv metadata.", rich_help_panel="Model")] = None,
    names: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Class names file, for ONNX files without metadata.", rich_help_panel="Model")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.", rich_help_panel="Model")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT: replay the network as one CUDA graph (static shapes).", rich_help_panel="Model")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after N frames.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a video file ends before the frames it declares (truncated or corrupt).", rich_help_panel="Input")] = False,
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
    _check_outputs(save, jsonl, stats_json)  # before any work: a bad output path must not cost a run
    path = default_model(model)
    options: dict[str, Any] = {"threads": threads}
    if cuda_graph:
        from edgecv.engine.registry import backend_for

        if backend_for(path) != "tensorrt":
            raise ConfigError("--cuda-graph applies to TensorRT engines", hint=f"build one: edgecv build-engine {path}")
        options["cuda_graph"] = True
    loaded = edgecv.load(path, conf=conf, iou=iou, classes=int_list(classes, "--classes"), task=task, names=names_arg(names), **options)
    src = None
    sinks: list[Any] = []
    try:
        spec: Any = camera if camera is not None else source
        if spec is None:
            spec = assets.demo_video()
            log.info("no --source: using the demo video %s", spec)
        src = open_source(spec, realtime=realtime, max_reconnect_s=reconnect_timeout, open_timeout_s=open_timeout)
        # outputs open only now, with the model and the source open: a run that cannot start keeps old outputs
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
    if summary.ended_early and strict:
        raise SourceError(summary.ended_early, hint="check the file with `ffprobe FILE`; without --strict the frames read are kept")


def _check_outputs(save: Path | None, jsonl: Path | None, stats_json: Path | None) -> None:
    """Every output can be written (folder exists and takes a new file; distinct names), before the model is loaded."""
    from edgecv.artifact import check_writable
    from edgecv.stream.sinks import VIDEO_CODECS

    if save is not None:
        if save.suffix.lower() not in VIDEO_CODECS:
            raise ConfigError(
                f"cannot write video {save}: unknown suffix {save.suffix or '(none)'}",
                hint="use " + ", ".join(f"{s} ({c})" for s, c in VIDEO_CODECS.items()),
            )
        check_writable(save, "video")
    if jsonl is not None:
        check_writable(jsonl, "JSONL")
    if stats_json is not None:
        check_writable(stats_json, "--stats-json")
    paths = [p.resolve() for p in (save, jsonl, stats_json) if p is not None]
    if len(set(paths)) != len(paths):
        raise ConfigError("--save, --jsonl and --stats-json must be different files", hint="give each output its own name")


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
    if summary.ended_early:
        out.print(f"  ended early: {summary.frames} of {summary.expected_frames} declared frames (truncated or corrupt file)", highlight=False)


