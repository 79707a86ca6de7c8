"""`edgecv run`: the real-time loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import IMGSZ_HELP, SQUARE_HELP, default_model, imgsz_arg, int_list, names_arg, threads_arg
from edgecv.errors import EXIT_INTERRUPTED, ConfigError, SourceError
from edgecv.log import console, out

log = logging.getLogger("edgecv.cli")

# ---------------------------------------------------------------- run
@app.command()
@handle_errors
def run(
    model: Annotated[Path | None, typer.Argument(help="Model file (default: the shipped detector).")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Video, image, folder, glob, rtsp/http URL or GStreamer pipeline; repeat it for several cameras, inferred in one batch.", rich_help_panel="Input")] = None,
    camera: Annotated[int | None, typer.Option(help="Camera index (V4L2).", rich_help_panel="Input")] = None,
    realtime: Annotated[bool, typer.Option(help="Pace a file at its fps and treat it like a live camera (newest frame, drops counted).", rich_help_panel="Input")] = False,
    reconnect_timeout: Annotated[float, typer.Option(help="Give up on a dropped live source after this many seconds.", rich_help_panel="Input")] = 30.0,
    open_timeout: Annotated[float, typer.Option(help="Network streams: how long opening (and each read) may take, in seconds.", rich_help_panel="Input")] = 5.0,
    batch_timeout_ms: Annotated[float | None, typer.Option(help="Several sources: once one has a frame, wait at most this long for the others before inferring the batch (about one frame period; default 33).", rich_help_panel="Input")] = None,
    max_batch: Annotated[int | None, typer.Option(help="Several sources: at most this many frames per inference call (default: one per source; 1 = no batching).", rich_help_panel="Input")] = None,
    save: Annotated[list[Path] | None, typer.Option(help="Write the annotated video (.mp4 / .avi). Several sources: repeat it once per source (in --source order) or give one path with {source} (index) or {name}.", rich_help_panel="Output")] = None,
    jsonl: Annotated[list[Path] | None, typer.Option(help="Write one JSON line per frame. Several sources: as --save.", rich_help_panel="Output")] = None,
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
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads per inference (default: the usable cores, split between the inferences in flight).", rich_help_panel="Model")] = None,
    inflight: Annotated[int | None, typer.Option(help="Frames inferred at once, each on its own thread (default: 2 with half the cores each for files and folders on the CPU, else 1; live sources: 1, lowest latency).", rich_help_panel="Model")] = None,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="TensorRT: replay the network as one CUDA graph (static shapes).", rich_help_panel="Model")] = False,
    triton: Annotated[str | None, typer.Option(help="Run the network on this Triton server (http://HOST:8000 or grpc://HOST:8001); MODEL is its name there (or the deployed file).", rich_help_panel="Model")] = None,
    serve: Annotated[str | None, typer.Option("--serve", metavar="[HOST:]PORT", help="Serve a live page (annotated MJPEG + figures), /api/status and /metrics. Binds 127.0.0.1 unless a host is given.", rich_help_panel="Serve")] = None,
    metrics_only: Annotated[str | None, typer.Option("--metrics-only", metavar="[HOST:]PORT", help="Serve only /metrics (Prometheus), /api/status and /healthz: figures, no video.", rich_help_panel="Serve")] = None,
    serve_token: Annotated[str | None, typer.Option("--serve-token", envvar="EDGECV_SERVE_TOKEN", show_envvar=True, help="Require this token (?token=..., Authorization: Bearer ..., or the page's cookie).", rich_help_panel="Serve")] = None,
    serve_fps: Annotated[float | None, typer.Option("--serve-fps", help="Most preview frames per second encoded per stream (default 15; only while someone watches).", rich_help_panel="Serve")] = None,
    track: Annotated[bool, typer.Option("--track", help="ByteTrack IDs per source: drawn, and `track_id` in the JSONL.", rich_help_panel="Tracking")] = False,
    track_thresh: Annotated[float | None, typer.Option(help="--track: detections scoring at least this start and match tracks first (default 0.6; lower ones only continue tracks).", rich_help_panel="Tracking")] = None,
    track_buffer: Annotated[int | None, typer.Option(help="--track: frames (at 30 FPS) a lost track is kept for re-association (default 30).", rich_help_panel="Tracking")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after N frames.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a video file ends before the frames it declares (truncated or corrupt).", rich_help_panel="Input")] = False,
) -> None:
    """Run a model on a camera, video, stream or images, live.

    With no model and no source, runs the shipped detector on the demo video.
    Example: edgecv run models/shapes-det.onnx --source video.mp4 --save out.mp4
    """
    import edgecv
    from edgecv import assets
    from edgecv.stream.pipeline import install_signal_handlers, run_sources
    from edgecv.stream.policy import ParallelismConfig
    from edgecv.stream.sinks import JsonlSink, VideoSink, WindowSink
    from edgecv.stream.sources import open_source
    from edgecv.stream.streaming import StreamConfig

    sources = list(source or [])
    if sources and camera is not None:
        raise ConfigError("--source and --camera are exclusive", hint="pass one of them (a camera index also works as --source 0)")
    if max_frames is not None and max_frames <= 0:
        raise ConfigError(f"--max-frames must be positive, got {max_frames}")
    serve_config = _serve_config(serve, metrics_only, serve_token, serve_fps)
    specs: list[Any] = [camera] if camera is not None else sources
    save_paths = output_paths(save or [], specs or ["demo"], "--save")
    jsonl_paths = output_paths(jsonl or [], specs or ["demo"], "--jsonl")
    _check_outputs(save_paths, jsonl_paths, stats_json)  # before any work: a bad output path must not cost a run
    if len(specs) <= 1:
        given = [name for name, v in (("--batch-timeout-ms", batch_timeout_ms), ("--max-batch", max_batch)) if v is not None]
        if given:
            log.warning("%s batch frames of several sources; with one source they have no effect", " and ".join(given))
    batching = {"batch_timeout_ms": batch_timeout_ms} if batch_timeout_ms is not None else {}
    config = StreamConfig(
        max_frames=max_frames, max_batch=max_batch, track=track_config(track, track_thresh, track_buffer), **batching
    )  # validates
    path = default_model(model)
    size = imgsz_arg(imgsz)
    from edgecv.engine.registry import backend_for, runs_on_cpu

    options: dict[str, Any] = {}
    if triton is not None:  # MODEL names the model on the server; the network runs there
        if cuda_graph:
            raise ConfigError("--cuda-graph applies to local TensorRT engines, not a Triton model", hint="drop --cuda-graph")
        options["triton"] = triton
    is_trt = triton is None and backend_for(path) == "tensorrt"
    if threads_arg(threads) is not None and is_trt:
        raise ConfigError("--threads sets ONNX Runtime's CPU threads; a TensorRT engine runs on the GPU", hint="leave out --threads")
    if inflight is not None and inflight < 1:
        raise ConfigError(f"--inflight must be at least 1, got {inflight}", hint="1 infers one frame at a time; leave it out for the automatic choice")
    if cuda_graph:
        if not is_trt:
            raise ConfigError("--cuda-graph applies to TensorRT engines", hint=f"build one: edgecv build-engine {path}")
        options["cuda_graph"] = True
    thresholds = {k: v for k, v in (("conf", conf), ("iou", iou), ("classes", int_list(classes, "--classes"))) if v is not None}
    live = realtime or any(_is_live(spec) for spec in specs)  # no source: the demo video
    plan = ParallelismConfig.choose(cpu_backend=triton is None and runs_on_cpu(path), live=live, threads=threads, inflight=inflight)
    if plan.threads is not None:
        options["threads"] = plan.threads
    config = dataclasses.replace(config, inflight=plan.inflight)
    loaded = edgecv.load(
        path, task=task, names=names_arg(names), imgsz=size, square=square, mask_threshold=mask_threshold, regions=regions, **thresholds, **options
    )
    if loaded.task != "detect" and thresholds:
        loaded.close()
        given = ", ".join(f"--{k}" for k in thresholds)
        raise ConfigError(f"{given} apply to detectors; {path.name} is a {loaded.task} model", hint=f"leave out {given}")
    if not specs:
        specs = [assets.demo_video()]
        log.info("no --source: using the demo video %s", specs[0])
    srcs: list[Any] = []
    sinks: list[list[Any]] = []
    server = None
    try:
        for spec in specs:
            srcs.append(open_source(spec, realtime=realtime, max_reconnect_s=reconnect_timeout, open_timeout_s=open_timeout))
        log.info("inference: %s", plan.reason)
        for i, src in enumerate(srcs):
            group: list[Any] = []
            sinks.append(group)
            if save_paths[i]:
                group.append(VideoSink(save_paths[i], fps=src.fps or 30.0, size=src.size))
            if jsonl_paths[i]:
                group.append(JsonlSink(jsonl_paths[i]))
            if show:
                group.append(WindowSink("edgecv" if len(srcs) == 1 else f"edgecv {i}: {src.name}"))
        status = _status_printer()
        if serve_config is not None:
            server, status = _start_server(serve_config, loaded, srcs, sinks, annotate=[not (save_paths[i] or show) for i in range(len(srcs))], then=status)
        stop = threading.Event()
        with install_signal_handlers(stop):
            result = run_sources(loaded, srcs, sinks, config, status=status, stop_event=stop)
    finally:  # run_sources closes them too; this covers a failure before it started (close is idempotent)
        for sink in (s for group in sinks for s in group):
            sink.close()
        for src in srcs:
            src.close()
        if server is not None:
            server.close()
        loaded.close()
    _print_summary(result, loaded, plan)
    if stats_json:
        from edgecv.artifact import atomic_write_bytes

        data = result.sources[0].to_dict() if len(srcs) == 1 else result.to_dict()
        data["inference"] = {"inflight": plan.inflight, "threads": plan.threads, "reason": plan.reason}
        atomic_write_bytes(stats_json, json.dumps(data, indent=2).encode())
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.errors:
        first = next(iter(result.errors.values()))
        raise SourceError(
            f"{len(result.errors)} of {len(srcs)} sources failed and were dropped (the others ran to the end); first: {str(first).splitlines()[0]}",
            hint="check those cameras/streams; the outputs of every source were finalized",
        )
    ended = [s.ended_early for s in result.sources if s.ended_early]
    if ended and strict:
        raise SourceError(ended[0], hint="check the file with `ffprobe FILE`; without --strict the frames read are kept")


def _check_outputs(save: list[Path | None], jsonl: list[Path | None], stats_json: Path | None) -> None:
    """Every output can be written (folder exists and takes a new file; distinct names), before the model is loaded."""
    from edgecv.artifact import check_writable
    from edgecv.stream.sinks import VIDEO_CODECS

    for path in save:
        if path is None:
            continue
        if path.suffix.lower() not in VIDEO_CODECS:
            raise ConfigError(
                f"cannot write video {path}: unknown suffix {path.suffix or '(none)'}",
                hint="use " + ", ".join(f"{s} ({c})" for s, c in VIDEO_CODECS.items()),
            )
        check_writable(path, "video")
    for path in jsonl:
        if path is not None:
            check_writable(path, "JSONL")
    if stats_json is not None:
        check_writable(stats_json, "--stats-json")
    paths = [p.resolve() for p in (*save, *jsonl, stats_json) if p is not None]
    if len(set(paths)) != len(paths):
        raise ConfigError("--save, --jsonl and --stats-json must be different files", hint="give each output its own name")


def track_config(track: bool, thresh: float | None, buffer: int | None) -> Any:
    """The TrackConfig of --track and its options (False without --track); options without --track are an error."""
    if not track:
        given = [name for name, v in (("--track-thresh", thresh), ("--track-buffer", buffer)) if v is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} need --track", hint="add --track")
        return False
    from edgecv.track import TrackConfig

    options: dict[str, Any] = {}
    if thresh is not None:
        options["high_thresh"] = thresh
        options["new_track_thresh"] = max(thresh, TrackConfig.new_track_thresh)
    if buffer is not None:
        options["track_buffer"] = buffer
    return TrackConfig(**options)


def output_paths(paths: list[Path], specs: list[Any], option: str) -> list[Path | None]:
    """One output path (or None) per source from the repeated ``option``.

    One source: at most one path. Several: one path per source in ``--source`` order, or a single
    path with ``{source}`` (the source's index) or ``{name}`` (its file name or host, made safe).
    """
    n = len(specs)
    if not paths:
        return [None] * n
    templated = len(paths) == 1 and ("{source}" in str(paths[0]) or "{name}" in str(paths[0]))
    if templated:
        out = [Path(str(paths[0]).replace("{source}", str(i)).replace("{name}", _safe_name(spec))) for i, spec in enumerate(specs)]
    elif len(paths) == n:
        out = list(paths)
    else:
        raise ConfigError(
            f"{option} was given {len(paths)} time(s) for {n} source(s)",
            hint=f"give {option} once per --source (same order), or once with a placeholder, e.g. {option} out_{{source}}{paths[0].suffix}",
        )
    dupes = sorted({str(p) for p in out if out.count(p) > 1})
    if dupes:
        raise ConfigError(f"{option}: several sources would write {dupes[0]}", hint="use {source} in the path, or distinct paths")
    for p in out:
        if not p.parent.is_dir():
            raise ConfigError(f"cannot write {p}: folder {p.parent} does not exist", hint=f"mkdir -p {p.parent}")
    return list(out)


def _short(name: str) -> str:
    from edgecv.stream.sources import redact

    return redact(name) if "://" in name else Path(name).name or name


def _safe_name(spec: Any) -> str:
    import re
    from urllib.parse import urlparse

    text = str(spec)
    url = urlparse(text)
    base = (url.hostname or "") + url.path if url.scheme and url.netloc else Path(text).stem or text
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("_.") or "source"


SERVE_SOURCE_PREFIX = "cam"


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


def _start_server(
    config: Any, model: Any, srcs: list[Any], sinks: list[list[Any]], *, annotate: list[bool], then: Callable[[Any], None] | None
) -> tuple[Any, Callable[[Any], None]]:
    """Start the preview/metrics server with one stream per source (ids cam0, cam1, ...).

    Adds each source's preview sink to its sink group (``annotate[i]``: the sink draws source i's boxes itself,
    because no video or window sink makes the loop draw them); returns the server and the loop's status callback.
    """
    from edgecv.serve import PreviewServer

    server = PreviewServer(config)
    feeds = []
    for i, (src, group) in enumerate(zip(srcs, sinks)):
        source_id = f"{SERVE_SOURCE_PREFIX}{i}"
        group.append(server.sink(source_id, model=model, source=str(getattr(src, "name", "")), annotate=annotate[i], live=bool(getattr(src, "is_live", False))))
        feeds.append(server.hub.status_callback(source_id))
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

    def status(summaries: list[Any]) -> None:
        for feed, summary in zip(feeds, summaries):
            feed(summary)
        if then is not None:
            then(summaries)

    return server, status


def _status_printer() -> Callable[[Any], None] | None:
    if state["quiet"] or not console.is_terminal:
        return None

    def status(summaries: list[Any]) -> None:
        if len(summaries) == 1:
            summary = summaries[0]
            stages = " ".join(f"{name} {mean:.1f}" for name, mean, _, _ in summary.stage_rows() if name != "total")
            console.print(f"\r{summary.frames} frames  {summary.fps:5.1f} FPS  ms: {stages}", end="", highlight=False)
        else:
            each = "  ".join(f"[{i}] {s.frames} {s.fps:4.1f} FPS" + (" (reconnecting)" if s.reconnecting else "") for i, s in enumerate(summaries))
            console.print(f"\r{each}", end="", highlight=False)

    return status


def _is_live(spec: Any) -> bool:
    """A camera, stream or pipeline (a source that does not exist is reported when it is opened)."""
    from edgecv.stream.sources import LIVE_KINDS, source_kind

    try:
        return source_kind(spec) in LIVE_KINDS
    except SourceError:
        return False


def _print_summary(result: Any, model: Any, plan: Any) -> None:
    from rich.table import Table

    if console.is_terminal and not state["quiet"]:
        console.print()
    summaries = result.sources
    if len(summaries) > 1:
        _print_sources(result, model)
    else:
        summary = summaries[0]
        table = Table(title=f"{model.path.name}: {summary.frames} frames, {summary.fps:.1f} FPS", title_justify="left")
        for col in ("stage", "mean ms", "p50 ms", "p99 ms"):
            table.add_column(col, justify="right" if col != "stage" else "left")
        for name, mean, p50, p99 in summary.stage_rows():
            table.add_row(name, f"{mean:.2f}", f"{p50:.2f}", f"{p99:.2f}")
        out.print(table)
    out.print(f"  inference: {plan.reason}", highlight=False, soft_wrap=True)
    if model.engine.backend == "tensorrt":
        gpu = ["preprocessing: " + ("CUDA kernel (pre = its GPU time + launch)" if getattr(model, "gpu_preprocess", False) else "CPU")]
        gpu.append("CUDA graph: " + ("on" if getattr(model.engine, "cuda_graph", False) else "off"))
        out.print("  " + ", ".join(gpu), highlight=False)
    for summary in summaries:
        d = summary.to_dict()
        extras = {k: d[k] for k in ("dropped", "bad_frames", "reconnects") if d.get(k)}
        if extras and len(summaries) == 1:
            out.print("  " + ", ".join(f"{k}: {v}" for k, v in extras.items()))
        if summary.ended_early:
            out.print(
                f"  {_short(summary.source)} ended early: {summary.frames} of {summary.expected_frames} declared frames (truncated or corrupt file)",
                highlight=False, soft_wrap=True,
            )


def _print_sources(result: Any, model: Any) -> None:
    from rich.table import Table

    b = result.batching
    title = f"{model.path.name}: {len(result.sources)} sources, {b.batches} batches, {b.mean_batch:.2f} frames per batch, {b.infer_calls} inference calls"
    table = Table(title=title, title_justify="left", caption="ms per frame: infer = its batch's call, total = capture to sink", caption_justify="left")
    for col in ("#", "source", "frames", "FPS", "drop", "recon", "infer", "p50", "p99", "end"):
        table.add_column(col, justify="left" if col in ("source", "end") else "right")
    for i, s in enumerate(result.sources):
        total = s.stages["total"]
        end = s.stop_reason + (f": {str(result.errors[i]).splitlines()[0]}" if i in result.errors else "")
        table.add_row(
            str(i), _short(s.source), str(s.frames), f"{s.fps:.1f}", str(s.dropped), str(s.reconnects),
            f"{s.stages['infer'].mean:.2f}", f"{total.p50:.2f}", f"{total.p99:.2f}", end,
        )
    out.print(table)
