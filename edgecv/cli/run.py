"""`edgecv run`: the real-time loop."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import default_model, int_list, names_arg
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
    conf: Annotated[float, typer.Option(help="Score threshold.", rich_help_panel="Model")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.", rich_help_panel="Model")] = 0.45,
    classes: Annotated[str | None, typer.Option(help="Keep only these class ids, e.g. 0,2.", rich_help_panel="Model")] = None,
    task: Annotated[str | None, typer.Option(help="detect / segment, for ONNX files without edgecv metadata.", rich_help_panel="Model")] = None,
    names: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Class names file, for ONNX files without metadata.", rich_help_panel="Model")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.", rich_help_panel="Model")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT: replay the network as one CUDA graph (static shapes).", rich_help_panel="Model")] = False,
    triton: Annotated[str | None, typer.Option(help="Run the network on this Triton server (http://HOST:8000 or grpc://HOST:8001); MODEL is its name there (or the deployed file).", rich_help_panel="Model")] = None,
    serve: Annotated[str | None, typer.Option("--serve", metavar="[HOST:]PORT", help="Serve a live page (annotated MJPEG + figures), /api/status and /metrics. Binds 127.0.0.1 unless a host is given.", rich_help_panel="Serve")] = None,
    metrics_only: Annotated[str | None, typer.Option("--metrics-only", metavar="[HOST:]PORT", help="Serve only /metrics (Prometheus), /api/status and /healthz: figures, no video.", rich_help_panel="Serve")] = None,
    serve_token: Annotated[str | None, typer.Option("--serve-token", envvar="EDGECV_SERVE_TOKEN", show_envvar=True, help="Require this token (?token=..., Authorization: Bearer ..., or the page's cookie).", rich_help_panel="Serve")] = None,
    serve_fps: Annotated[float | None, typer.Option("--serve-fps", help="Most preview frames per second encoded per stream (default 15; only while someone watches).", rich_help_panel="Serve")] = None,
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
    serve_config = _serve_config(serve, metrics_only, serve_token, serve_fps)
    path = default_model(model)
    options: dict[str, Any] = {"threads": threads}
    if triton is not None:
        if cuda_graph:
            raise ConfigError("--cuda-graph applies to local TensorRT engines, not a Triton model", hint="drop --cuda-graph")
        options = {"triton": triton} | ({"threads": threads} if threads is not None else {})
    if cuda_graph:
        from edgecv.engine.registry import backend_for

        if backend_for(path) != "tensorrt":
            raise ConfigError("--cuda-graph applies to TensorRT engines", hint=f"build one: edgecv build-engine {path}")
        options["cuda_graph"] = True
    loaded = edgecv.load(path, conf=conf, iou=iou, classes=int_list(classes, "--classes"), task=task, names=names_arg(names), **options)
    src = None
    server = None
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
        status = _status_printer()
        if serve_config is not None:
            server, sink, status = _start_server(serve_config, loaded, src, annotate=not (save or show), then=status)
            sinks.append(sink)
        stop = threading.Event()
        with install_signal_handlers(stop):
            summary = run_pipeline(loaded, src, sinks, max_frames=max_frames, status=status, stop_event=stop)
    finally:  # run_pipeline closes them too; this covers a failure before it started (close is idempotent)
        for sink in sinks:
            sink.close()
        if src is not None:
            src.close()
        if server is not None:
            server.close()
        loaded.close()
    _print_summary(summary, loaded)
    if stats_json:
        from edgecv.artifact import atomic_write_bytes

        atomic_write_bytes(stats_json, json.dumps(summary.to_dict(), indent=2).encode())
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


SERVE_SOURCE_ID = "cam0"


def _serve_config(serve: str | None, metrics_only: str | None, token: str | None, fps: float | None) -> Any:
    """The ServeConfig of --serve / --metrics-only, or None; serve options without either are an error."""
    if serve is not None and metrics_only is not None:
        raise ConfigError("--serve and --metrics-only are exclusive", hint="--serve includes /metrics; use one of them")
    if serve is None and metrics_only is None:
        extra = [name for name, v in (("--serve-token", token), ("--serve-fps", fps)) if v is not None]
        # a token from the environment alone is fine: it is there for when a server is asked for
        if fps is not None or (token is not None and "EDGECV_SERVE_TOKEN" not in os.environ):
            raise ConfigError(f"{' and '.join(extra)} need --serve or --metrics-only", hint="add --serve 8080 (or --metrics-only 9100)")
        return None
    from edgecv.serve import ServeConfig

    if metrics_only is not None:
        if fps is not None:
            raise ConfigError("--serve-fps applies to the video preview", hint="use --serve instead of --metrics-only, or drop --serve-fps")
        return ServeConfig.parse(metrics_only, token=token, option="--metrics-only", video=False)
    return ServeConfig.parse(serve, token=token, **({"max_fps": fps} if fps is not None else {}))  # type: ignore[arg-type]


def _start_server(config: Any, model: Any, src: Any, *, annotate: bool, then: Callable[[Any], None] | None) -> tuple[Any, Any, Callable[[Any], None]]:
    """Start the preview/metrics server; returns it, the loop's sink and the loop's status callback."""
    from edgecv.serve import PreviewServer

    server = PreviewServer(config)
    sink = server.sink(SERVE_SOURCE_ID, model=model, source=str(getattr(src, "name", "")), annotate=annotate, live=bool(getattr(src, "is_live", False)))
    what = "live preview" if config.video else "metrics"
    token = " (token required)" if config.token else ""
    console.print(f"serving {what} on {server.url}{token}  (/api/status, /metrics)", highlight=False, soft_wrap=True)
    if not config.exposed:
        import getpass
        import socket

        try:
            user = getpass.getuser() + "@"
        except (OSError, KeyError):  # no login name in some containers
            user = ""
        console.print(
            f"  from a laptop: ssh -N -L {server.port}:127.0.0.1:{server.port} {user}{socket.gethostname()}"
            f"  then open http://127.0.0.1:{server.port}/", highlight=False, soft_wrap=True,
        )
    return server, sink, server.hub.status_callback(SERVE_SOURCE_ID, then=then)


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


