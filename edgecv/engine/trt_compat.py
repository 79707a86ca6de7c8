"""Every TensorRT-version-dependent call in one place (DESIGN principle 5).

TensorRT 10 (JetPack 6) has weakly typed networks with precision builder flags
(``BuilderFlag.FP16/INT8``) and implicit INT8 calibrators, and also strongly typed
networks. TensorRT 11 removed the flags and the calibrators: networks are strongly
typed, FP16 comes from an FP16 ONNX and INT8 from Q/DQ nodes. cuda-python moved its
runtime module from ``cuda.cudart`` to ``cuda.bindings.runtime`` (12.6+).

The functions here take the ``tensorrt`` module (or a stand-in with the same
attribute names, in tests) so the logic is exercised without a GPU.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from edgecv._optional import require
from edgecv.errors import ConfigError, EngineError, MissingDependencyError

JETSON_TRT = "TensorRT comes with JetPack (sudo apt install python3-libnvinfer)"


def import_tensorrt() -> ModuleType:
    return require("tensorrt", jetson=JETSON_TRT)


def version_tuple(text: str) -> tuple[int, int, int]:
    """``"10.3.0.30"`` -> ``(10, 3, 0)``."""
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    return tuple((parts + [0, 0, 0])[:3])  # type: ignore[return-value]


def trt_version(trt: Any) -> tuple[int, int, int]:
    return version_tuple(trt.__version__)


def has_implicit_int8(trt: Any) -> bool:
    """True when this TensorRT still has implicit-quantization calibrators (TensorRT < 11)."""
    return hasattr(trt, "IInt8EntropyCalibrator2") and trt_version(trt)[0] < 11


def has_precision_flags(major: int) -> bool:
    """``BuilderFlag.FP16/INT8`` (weak typing) exist up to TensorRT 10."""
    return major < 11


def import_cudart() -> ModuleType:
    """cuda-python's runtime API module, from either package layout."""
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python < 12.6

        return cudart
    except ImportError as exc:
        raise MissingDependencyError(
            f"cuda-python is not importable ({exc})", hint="pip install 'edgecv[tensorrt]' (cuda-python matching your CUDA)"
        ) from exc


def check_cuda(cudart: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` result; raise EngineError on failure."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise EngineError(f"CUDA {what} failed: {name}", hint="check the GPU is visible (nvidia-smi / tegrastats) and has free memory")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


# ----------------------------------------------------------------------------- build planning

PRECISIONS = ("auto", "fp32", "fp16", "int8", "best")
HARDWARE_COMPAT = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}


@dataclass(frozen=True)
class BuildPlan:
    """What to build, decided from the TensorRT major, the graph's precision and the user's request.

    Attributes:
        graph: the ONNX to parse: "as-is", "fp16" (convert to a mixed-precision FP16 graph
            first) — INT8 graphs come from ``edgecv calibrate`` (they need images).
        strongly_typed: create the network with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``.
        flags: ``BuilderFlag`` names to set.
        implicit_int8_cache: use this TensorRT calibration cache (TensorRT 10 implicit INT8).
        precision: the precision recorded in the manifest.
        notes: one-line explanations for the user.
    """

    graph: str
    strongly_typed: bool
    flags: tuple[str, ...]
    precision: str
    implicit_int8_cache: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def plan_build(
    major: int,
    graph_precision: str,
    requested: str = "auto",
    *,
    calib_cache: str | None = None,
    sparsity: bool = False,
    dla: bool = False,
    gpu_fallback: bool = False,
    version_compatible: bool = False,
) -> BuildPlan:
    """Map ``--fp16/--int8/--best`` (and friends) onto what TensorRT ``major`` supports.

    Precision lives in the graph (both majors): ``fp16`` on an FP32 graph converts it to
    a mixed-precision FP16 graph first; ``int8`` needs the Q/DQ graph of ``edgecv
    calibrate``, except on TensorRT 10 with ``calib_cache`` (implicit INT8 with the legacy
    flag, for users who want it); ``best`` on TensorRT 10 lets the builder pick per layer
    (weak typing: FP16 + INT8 flags); on TensorRT 11 it is the graph as given.

    Raises:
        ConfigError: a request this TensorRT cannot honour, with what to do instead.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if graph_precision not in ("fp32", "fp16", "int8"):
        raise ConfigError(f"cannot build an engine from a {graph_precision!r} graph")
    legacy = has_precision_flags(major)
    flags: list[str] = []
    notes: list[str] = []
    graph, typed, precision, cache = "as-is", True, graph_precision, None
    if requested == "fp32" and graph_precision != "fp32":
        raise ConfigError(f"--fp32 was asked for, but the graph is {graph_precision}", hint="pass the FP32 .onnx")
    if requested == "fp16":
        if graph_precision == "int8":
            raise ConfigError("--fp16 was asked for, but the graph has INT8 Q/DQ nodes", hint="pass the FP32 or FP16 .onnx")
        if graph_precision == "fp32":
            graph, precision = "fp16", "fp16"
            notes.append("converting the FP32 graph to mixed-precision FP16 first (edgecv convert --fp16): precision lives in the graph")
    elif requested == "int8":
        if graph_precision != "int8":
            if calib_cache and legacy:
                typed, cache, precision = False, calib_cache, "int8"
                flags += ["INT8", "FP16"]
                notes.append("TensorRT 10 implicit INT8 from the calibration cache (legacy flags); the Q/DQ graph is the portable way")
            elif calib_cache:
                raise ConfigError(
                    f"TensorRT {major} has no implicit INT8: calibration caches are not used",
                    hint="build from the Q/DQ graph: edgecv calibrate MODEL.onnx IMAGES, then build-engine MODEL.int8.onnx",
                )
            else:
                raise ConfigError(
                    "--int8 needs the INT8 Q/DQ graph (it is calibrated on images)",
                    hint="edgecv calibrate MODEL.onnx IMAGES (writes MODEL.int8.onnx), then build-engine MODEL.int8.onnx"
                    + (", or pass --calib-cache MODEL.calib (TensorRT 10 implicit INT8)" if legacy else ""),
                )
    elif requested == "best":
        if legacy:
            typed = False
            flags += ["FP16", "INT8"] if graph_precision == "int8" else ["FP16"]
            precision = "best"
            notes.append("TensorRT 10 weak typing: the builder picks FP16/INT8 per layer (FP32 I/O kept)")
        else:
            notes.append(f"TensorRT {major} is strongly typed: --best builds the graph as given ({graph_precision})")
    if sparsity:
        flags.append("SPARSE_WEIGHTS")
    if dla:
        if not legacy and major == 11:
            notes.append("DLA on TensorRT 11 needs 11.4.1+ on AGX Orin with JetPack >= 7.2.2")
        if gpu_fallback:
            flags.append("GPU_FALLBACK")
        if graph_precision == "fp32" and graph == "as-is" and requested in ("auto", "fp32"):
            raise ConfigError("DLA runs FP16 or INT8 only", hint="add --fp16 (or build from the FP16/INT8 graph)")
        if legacy and typed:  # strongly typed networks on DLA arrived in TensorRT 11.4.1: TensorRT 10 takes the precision flags
            typed = False
            flags += [f for f in (["FP16", "INT8"] if precision == "int8" else ["FP16"]) if f not in flags]
            notes.append("DLA on TensorRT 10: weakly typed network with the FP16/INT8 flags (the graph's precision kept)")
    if version_compatible:
        flags.append("VERSION_COMPATIBLE")
    return BuildPlan(graph, typed, tuple(flags), precision, cache, tuple(notes))


def network_flags(trt: Any, strongly_typed: bool) -> int:
    """``create_network`` flags.

    TensorRT 10: explicit batch is the only mode; ``STRONGLY_TYPED`` when the plan asks.
    TensorRT 11: every network is strongly typed, and ``create_network()`` takes no flag for it.
    """
    major = trt_version(trt)[0]
    if not strongly_typed or major >= 11:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise EngineError(f"TensorRT {trt.__version__} cannot build strongly typed networks", hint="use TensorRT 10 or newer")
    return 1 << int(flag)


def configure(
    trt: Any,
    builder: Any,
    config: Any,
    plan: BuildPlan,
    *,
    workspace_mb: int | None = None,
    dla_core: int | None = None,
    builder_level: int | None = None,
    hardware_compat: str | None = None,
) -> None:
    """Apply ``plan`` and the resource options to a builder config (the only place that touches it)."""
    for name in plan.flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise EngineError(f"TensorRT {trt.__version__} has no BuilderFlag.{name}", hint="drop the option that needs it")
        config.set_flag(flag)
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if dla_core is not None:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if cores == 0:
            raise ConfigError("--dla was asked for, but this device has no DLA cores", hint="DLA exists on Jetson AGX/NX Orin; drop --dla")
        if not 0 <= dla_core < cores:
            raise ConfigError(f"--dla {dla_core}: this device has DLA cores 0..{cores - 1}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
    if builder_level is not None:
        if not 0 <= builder_level <= 5:
            raise ConfigError(f"--builder-level must be 0-5, got {builder_level}")
        config.builder_optimization_level = int(builder_level)
    if hardware_compat is not None:
        if hardware_compat not in HARDWARE_COMPAT:
            raise ConfigError(f"unknown --hardware-compat {hardware_compat!r}", hint=f"use one of {', '.join(HARDWARE_COMPAT)}")
        level = getattr(trt.HardwareCompatibilityLevel, HARDWARE_COMPAT[hardware_compat], None)
        if level is None:  # SAME_COMPUTE_CAPABILITY arrived in TensorRT 10.9
            raise ConfigError(f"--hardware-compat {hardware_compat} needs a newer TensorRT than {trt.__version__}", hint="use --hardware-compat ampere+")
        config.hardware_compatibility_level = level


def progress_monitor(trt: Any, update: Callable[[str, int, int], None]) -> Any:
    """A ``trt.IProgressMonitor`` calling ``update(phase, step, total)`` (None where TensorRT has none).

    TensorRT turns an exception in a callback into "cancel the build" and drops it, so the
    monitor keeps it in ``error`` (Ctrl+C included) for the builder to raise.
    """
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.totals: dict[str, int] = {}
            self.error: BaseException | None = None

        def _update(self, phase: str, done: int, total: int) -> bool:
            if self.error is None:
                try:
                    update(phase, done, total)
                except BaseException as exc:  # kept, and raised by the builder
                    self.error = exc
            return self.error is None

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.totals[phase_name] = num_steps
            if parent_phase is None:
                self._update(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return self._update(phase_name, step + 1, self.totals.get(phase_name, step + 1))  # False cancels the build

        def phase_finish(self, phase_name: str) -> None:
            total = self.totals.pop(phase_name, 0)
            self._update(phase_name, total, total)

    return Monitor()


def parser_errors(parser: Any) -> list[str]:
    """One line per ONNX parser error: node name and operator when TensorRT reports them, then the message."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        where = []
        node_name = getattr(error, "node_name", None)
        operator = getattr(error, "node_operator", None)
        if callable(node_name) and node_name():
            where.append(f"node {node_name()!r}")
        elif callable(getattr(error, "node", None)) and error.node() >= 0:
            where.append(f"node #{error.node()}")
        if callable(operator) and operator():
            where.append(f"({operator()})")
        lines.append(f"{' '.join(where) + ': ' if where else ''}{error.desc()}")
    return lines
