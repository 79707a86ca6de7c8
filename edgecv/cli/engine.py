"""`edgecv build-engine`: TensorRT plans and their manifests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.cli.options import IMGSZ_HELP, batch_range, imgsz_arg
from edgecv.cli.quant import check_verdict, print_calibration
from edgecv.errors import ArtifactError, ConfigError
from edgecv.log import out

log = logging.getLogger("edgecv.cli")

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
    imgsz: Annotated[str | None, typer.Option(help=IMGSZ_HELP + " The engine's profile goes up to it.")] = None,
    square: Annotated[bool, typer.Option("--square", help="A static profile at the full --imgsz (frames padded to it).")] = False,
) -> None:
    """Build a TensorRT engine (plan + manifest) from an ONNX model.

    Example: edgecv build-engine models/shapes-det.onnx --fp16 -o shapes-det.engine
    """
    from edgecv.engine.builder import BuildOptions, build_engine
    from edgecv.log import stage_progress

    if not model.is_file():
        raise ArtifactError(f"{model} not found", hint="pass the .onnx that `edgecv export` (or calibrate/convert) wrote")
    if output is not None:
        from edgecv.artifact import check_writable

        check_writable(output, "engine")  # before any work (calibration, the build)
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
        with stage_progress(state["quiet"]) as stages:
            calibration = run_calibrate(model, calib, CalibrateOptions(target="tensorrt", max_drop=max_drop), stages=stages)
        print_calibration(calibration)
        check_verdict(calibration)  # no engine from a graph that failed the gate (or could not show it passed)
        model = calibration.targets[0].path
        out.print(f"building from {model}", highlight=False)
    options = BuildOptions(
        precision=chosen[0] if chosen else "auto", workspace_mb=workspace, dla_core=dla, gpu_fallback=gpu_fallback,
        timing_cache=timing_cache, sparsity=sparsity, builder_level=builder_level, version_compatible=version_compatible,
        hardware_compat=hardware_compat, calib_cache=calib_cache, batch=batch_range(batch) if batch else None,
        imgsz=imgsz_arg(imgsz), square=square,
    )  # fmt: skip
    from edgecv.artifact import check_writable

    dest = check_writable(output or model.with_suffix(".engine"), "engine")
    if timing_cache is not None:
        check_writable(timing_cache, "--timing-cache")
    with stage_progress(state["quiet"]) as stages:
        bars: dict[str, Callable[[int, int], None]] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = stages(phase, total)
            bars[phase](done, total)

        report = build_engine(model, dest, options, progress=progress)
    for note in report.notes:
        out.print(note, highlight=False)
    out.print(f"built {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB) in {report.seconds:.0f} s; manifest {report.manifest}")


