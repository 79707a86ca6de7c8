"""``edgecv build-engine``: ONNX -> TensorRT plan + manifest, with the TensorRT Python API.

Precision comes from the graph (see :func:`edgecv.engine.trt_compat.plan_build`);
optimization profiles come from the model's metadata (dynamic batch range, input
size); the timing cache is read and written; TensorRT's progress monitor drives the
progress bar; the plan and the timing cache are written atomically and the manifest
(:mod:`edgecv.engine.manifest`) next to the plan.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.artifact import ModelMeta, atomic_write_bytes, file_sha256, with_input_size, write_sidecar
from edgecv.errors import ConfigError, EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    """Options of ``edgecv build-engine`` (see its ``--help``)."""

    precision: str = "auto"
    workspace_mb: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    timing_cache: Path | None = None
    sparsity: bool = False
    builder_level: int | None = None
    version_compatible: bool = False
    hardware_compat: str | None = None
    calib_cache: Path | None = None
    batch: tuple[int, int, int] | None = None
    imgsz: tuple[int, int] | None = None  # build for this (h, w) (a dynamic model); the manifest records it
    square: bool = False  # a static H/W profile at the full size (frames padded to it)

    def cli_args(self) -> list[str]:
        """These options as ``edgecv build-engine`` flags (for the manifest's rebuild command)."""
        args = [f"--{self.precision}"] if self.precision in ("fp16", "int8", "best") else []
        for flag, value in (
            ("--workspace", self.workspace_mb), ("--dla", self.dla_core), ("--timing-cache", self.timing_cache),
            ("--builder-level", self.builder_level), ("--hardware-compat", self.hardware_compat), ("--calib-cache", self.calib_cache),
        ):  # fmt: skip
            if value is not None:
                args += [flag, str(value)]
        if self.batch is not None:
            args += ["--batch", ":".join(map(str, self.batch))]
        if self.imgsz is not None:
            args += ["--imgsz", f"{self.imgsz[0]},{self.imgsz[1]}"]
        args += [flag for flag, on in (("--gpu-fallback", self.gpu_fallback), ("--sparsity", self.sparsity), ("--version-compatible", self.version_compatible), ("--square", self.square)) if on]
        return args


def profile_shapes(
    meta: ModelMeta, input_shape: Sequence[int], batch: tuple[int, int, int] | None = None
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of the image input for an optimization profile.

    Dynamic batch: the metadata's range (``extra["dynamic_batch"]``, default 1:1:16) or
    ``batch``. Dynamic height/width (minimal letterbox padding): from a quarter of the
    input size up to the input size, in multiples of the stride; optimum at full size
    (with ``meta.square``: the full size only, frames are padded to it). Fixed dims stay fixed.
    """
    dims = list(input_shape)
    if len(dims) != 4:
        raise ConfigError(f"expected an image input (N, C, H, W) or (N, H, W, C), got {dims}")
    lo, opt, hi = batch or tuple(meta.extra.get("dynamic_batch", {}).get(k, d) for k, d in (("min", 1), ("opt", 1), ("max", 16)))
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"batch range must satisfy 1 <= MIN <= OPT <= MAX, got {lo}:{opt}:{hi}")
    nhwc = meta.layout == "NHWC" or meta.preprocess_in_graph
    h_axis, w_axis = (1, 2) if nhwc else (2, 3)
    mins, opts, maxs = list(dims), list(dims), list(dims)
    if dims[0] < 0:
        mins[0], opts[0], maxs[0] = lo, opt, hi
    elif batch is not None and batch != (dims[0],) * 3:
        raise ConfigError(f"the model's batch is fixed at {dims[0]}", hint="export with a dynamic batch (--dynamic-batch) to build for other batches")
    s = meta.stride
    for axis, full in ((h_axis, meta.input_size[0]), (w_axis, meta.input_size[1])):
        if dims[axis] < 0:
            mins[axis] = full if meta.square else max(s, (full // 4) // s * s)
            opts[axis] = maxs[axis] = full
    for axis in range(4):
        if dims[axis] < 0 and axis not in (0, h_axis, w_axis):
            raise ConfigError(f"input dimension {axis} is dynamic and edgecv cannot tell its range", hint="export with a fixed channel count")
    return tuple(mins), tuple(opts), tuple(maxs)


@dataclass
class BuildReport:
    path: Path
    manifest: Path
    precision: str
    seconds: float
    size_bytes: int
    notes: list[str]
    timing_cache: Path | None


def build_engine(
    onnx_path: Path,
    out: Path,
    options: BuildOptions = BuildOptions(),
    *,
    progress: Callable[[str, int, int], None] | None = None,
    trt: Any = None,
) -> BuildReport:
    """Build ``out`` (a TensorRT plan) from ``onnx_path`` and write its manifest.

    Raises:
        MissingDependencyError: TensorRT (or cuda-python) is not installed.
        ConfigError: an option this TensorRT or device cannot honour.
        EngineError: the parser rejects nodes (listed), or TensorRT fails to build.
    """
    from edgecv.engine import trt_compat
    from edgecv.engine.manifest import build_command, current_environment
    from edgecv.engine.onnxruntime import read_onnx_meta
    from edgecv.graph.onnx_graph import load_onnx

    trt = trt or trt_compat.import_tensorrt()
    start = time.perf_counter()
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise ConfigError(f"{onnx_path} not found", hint="pass the .onnx that `edgecv export` (or calibrate/convert) wrote")
    meta = with_input_size(read_onnx_meta(onnx_path), options.imgsz, square=options.square, model=Path(onnx_path).name)
    major = trt_compat.trt_version(trt)[0]
    if options.hardware_compat is not None:
        from edgecv.machine import is_jetson

        if is_jetson():
            raise ConfigError("--hardware-compat is not supported on JetPack (TensorRT's hardware compatibility is for discrete GPUs)", hint="build on each Jetson model, or drop --hardware-compat")
    plan = trt_compat.plan_build(
        major, meta.precision, options.precision,
        calib_cache=str(options.calib_cache) if options.calib_cache else None, sparsity=options.sparsity,
        dla=options.dla_core is not None, gpu_fallback=options.gpu_fallback, version_compatible=options.version_compatible,
    )  # fmt: skip
    for note in plan.notes:
        log.info("%s", note)
    graph_bytes = onnx_path.read_bytes()
    if plan.graph == "fp16":
        from edgecv.graph.fp16 import convert_fp16

        converted, meta = convert_fp16(load_onnx(onnx_path), meta)
        graph_bytes = converted.SerializeToString()

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(trt_compat.network_flags(trt, plan.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph_bytes, str(onnx_path)):
        errors = trt_compat.parser_errors(parser)
        raise EngineError(
            f"TensorRT's ONNX parser rejected {onnx_path.name} ({len(errors)} errors): " + " | ".join(errors[:5]),
            hint="check the opset (TensorRT 10 parses 17-20) and unsupported ops; `edgecv info` shows the graph's I/O",
        )
    config = builder.create_builder_config()
    trt_compat.configure(
        trt, builder, config, plan,
        workspace_mb=options.workspace_mb, dla_core=options.dla_core,
        builder_level=options.builder_level, hardware_compat=options.hardware_compat,
    )  # fmt: skip
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            lo, opt, hi = profile_shapes(meta, shape, options.batch)
            profile.set_shape(tensor.name, lo, opt, hi)
            dynamic = True
            log.info("profile %s: min %s, opt %s, max %s", tensor.name, lo, opt, hi)
    if dynamic and config.add_optimization_profile(profile) < 0:
        raise EngineError(f"TensorRT rejected the optimization profile of {onnx_path.name}", hint="pass --batch MIN:OPT:MAX within the model's limits")
    calibrator = None
    if plan.implicit_int8_cache:
        from edgecv.engine.trt_calibrator import CalibrationBatches, make_entropy_calibrator

        cache = Path(plan.implicit_int8_cache)
        if not cache.is_file():
            raise ConfigError(f"calibration cache {cache} not found", hint="edgecv calibrate MODEL.onnx IMAGES writes MODEL.calib")
        from edgecv.graph.onnx_graph import tensor_names

        if network.num_inputs != 1:
            raise ConfigError("implicit INT8 (--calib-cache) supports models with one input", hint="build from the Q/DQ graph of edgecv calibrate")
        names = tensor_names(load_onnx(onnx_path).graph)
        shape = tuple(network.get_input(0).shape)[1:]
        calibrator = make_entropy_calibrator(CalibrationBatches([], 1, shape), cache, tensor_names=names, trt=trt)
        config.int8_calibrator = calibrator
        if dynamic:
            config.set_calibration_profile(profile)
    timing = _timing_cache(config, options.timing_cache)
    monitor = trt_compat.progress_monitor(trt, progress) if progress is not None else None
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    # TensorRT swallows exceptions from Python callbacks: raise what the progress bar (Ctrl+C
    # included, which cancels the build) or the calibrator kept
    for callback in (monitor, calibrator):
        if getattr(callback, "error", None) is not None:
            raise callback.error
    if serialized is None:
        raise EngineError(
            f"TensorRT could not build an engine from {onnx_path.name} (see its log above)",
            hint="try a larger --workspace, --builder-level 3, or report the model with the log",
        )
    data = bytes(serialized)
    atomic_write_bytes(out, data)
    timing_hash = None
    if options.timing_cache is not None and timing is not None:
        cache_bytes = bytes(timing.serialize())
        atomic_write_bytes(options.timing_cache, cache_bytes)
        timing_hash = hashlib.sha256(cache_bytes).hexdigest()[:16]
    try:
        env = current_environment(trt, trt_compat.import_cudart())
    except Exception as exc:  # the engine is built; the manifest then records what is known
        log.warning("could not read the GPU properties for the manifest: %s", exc)
        env = {"tensorrt": trt.__version__}
    manifest = write_sidecar(
        out,
        meta.replace(precision=plan.precision),
        **env,
        precision=plan.precision,
        flags=list(plan.flags),
        strongly_typed=plan.strongly_typed,
        dla_core=options.dla_core,
        dla_cores=int(getattr(builder, "num_DLA_cores", 0)),
        version_compatible=options.version_compatible,
        hardware_compat=options.hardware_compat,
        source_onnx=onnx_path.name,
        source_sha256=file_sha256(onnx_path)[:16],
        timing_cache_sha256=timing_hash,
        engine_sha256=hashlib.sha256(data).hexdigest()[:16],
        build_command=build_command(onnx_path, out, options.cli_args()),
    )
    return BuildReport(out, manifest, plan.precision, time.perf_counter() - start, len(data), list(plan.notes), options.timing_cache)


def _timing_cache(config: Any, path: Path | None) -> Any:
    """Load (or start) the timing cache; a cache from another TensorRT/GPU is rebuilt, not an error."""
    if path is None:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this TensorRT/GPU; starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache
