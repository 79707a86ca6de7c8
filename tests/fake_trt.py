"""Stand-ins for the few TensorRT Python objects edgecv's builder and backend touch, and for cuda-python's runtime.

Attribute names follow NVIDIA's Python API reference: TensorRT 10.x
(docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api) and the 10.x -> 11.x
migration guide's "Removed Python APIs" (BuilderFlag.FP16/INT8/OBEY_PRECISION_CONSTRAINTS/...,
IBuilderConfig.int8_calibrator / set_calibration_profile, the IInt8 calibrators). Objects
use ``__slots__``, so touching an attribute the chosen version does not document raises
AttributeError and fails the test.
"""

from __future__ import annotations

import ctypes
import threading
import types
from enum import IntEnum
from typing import Any

TRT10_FLAGS = ["FP16", "INT8", "FP8", "BF16", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
               "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS",
               "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "STRIP_PLAN", "REFIT_IDENTICAL", "WEIGHT_STREAMING", "INT4"]  # fmt: skip
TRT11_REMOVED = {"FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO"}


class Logger:
    WARNING = 2

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class ParserError:
    __slots__ = ("_desc", "_node", "_name", "_op")

    def __init__(self, desc: str, node: int, name: str, op: str) -> None:
        self._desc, self._node, self._name, self._op = desc, node, name, op

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def code(self) -> int:
        return 1


class Tensor:
    __slots__ = ("name", "shape")

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, shape


class Network:
    __slots__ = ("flags", "inputs")

    def __init__(self, flags: int) -> None:
        self.flags, self.inputs = flags, []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> Tensor:
        return self.inputs[i]


class Profile:
    __slots__ = ("shapes",)

    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class TimingCache:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data or b"fresh"

    def serialize(self) -> bytes:
        return b"timing:" + self.data


def make(version: str, *, dla_cores: int = 0, parse_errors: list[tuple[str, int, str, str]] | None = None,
         input_shape: tuple[int, ...] = (-1, 3, -1, -1), build_fails: bool = False) -> Any:  # fmt: skip
    """A ``tensorrt`` module stand-in for ``version`` ("10.3.0" or "11.1.0")."""
    major, minor = (int(v) for v in version.split(".")[:2])
    flags = [f for f in TRT10_FLAGS if not (major >= 11 and f in TRT11_REMOVED)]
    BuilderFlag = IntEnum("BuilderFlag", flags, start=0)
    config_slots = ["flags", "pool", "default_device_type", "DLA_core", "builder_optimization_level", "hardware_compatibility_level",
                    "progress_monitor", "profiles", "timing_cache"]  # fmt: skip
    if major < 11:
        config_slots += ["int8_calibrator", "calibration_profile"]

    class Config:
        __slots__ = tuple(config_slots)

        def __init__(self) -> None:
            self.flags: set = set()
            self.profiles: list = []

        def set_flag(self, flag: Any) -> None:
            self.flags.add(flag.name)

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pool = (pool, size)

        def add_optimization_profile(self, profile: Profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self.timing_cache = cache
            return True

    if major < 11:

        def set_calibration_profile(self: Any, profile: Profile) -> None:
            self.calibration_profile = profile

        Config.set_calibration_profile = set_calibration_profile  # type: ignore[attr-defined]

    class Builder:
        __slots__ = ("logger", "num_DLA_cores", "network", "config", "built")

        def __init__(self, logger: Logger) -> None:
            self.logger, self.num_DLA_cores = logger, dla_cores
            module.last_builder = self

        def create_network(self, flags: int = 0) -> Network:
            self.network = Network(flags)
            return self.network

        def create_builder_config(self) -> Config:
            self.config = Config()
            return self.config

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            self.built = True
            monitor = getattr(config, "progress_monitor", None)
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            return None if build_fails else b"PLAN:" + ",".join(sorted(config.flags)).encode()

    class OnnxParser:
        __slots__ = ("network", "errors")

        def __init__(self, network: Network, logger: Logger) -> None:
            self.network, self.errors = network, [ParserError(*e) for e in (parse_errors or [])]

        def parse(self, model: bytes, path: str | None = None) -> bool:
            assert isinstance(model, bytes) and model
            self.network.inputs.append(Tensor("images", input_shape))
            return not self.errors

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    module = types.SimpleNamespace(
        __version__=version,
        Logger=Logger,
        Builder=Builder,
        OnnxParser=OnnxParser,
        BuilderFlag=BuilderFlag,
        MemoryPoolType=IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM"], start=0),
        DeviceType=IntEnum("DeviceType", ["GPU", "DLA"], start=0),
        # SAME_COMPUTE_CAPABILITY first appears in TensorRT 10.9's Python bindings (pyCore.cpp)
        HardwareCompatibilityLevel=IntEnum("HardwareCompatibilityLevel", ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if (major, minor) >= (10, 9) else []), start=0),
        NetworkDefinitionCreationFlag=IntEnum("NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "STRONGLY_TYPED"], start=0),
        IProgressMonitor=IProgressMonitor,
        last_builder=None,
    )
    if major < 11:

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        module.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return module


class FakeCudart:
    """cuda-python's runtime API over real host memory: "device" pointers are addresses of ctypes buffers.

    Stream capture: between ``cudaStreamBeginCapture`` and ``cudaStreamEndCapture`` work
    handed to :meth:`capture` (the fake TensorRT context does) is recorded instead of run,
    and ``cudaGraphLaunch`` replays it; ``fail_capture`` makes the capture fail as TensorRT
    engines with data-dependent shapes do.
    """

    cudaMemcpyKind = IntEnum("cudaMemcpyKind", ["cudaMemcpyHostToHost", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"], start=0)  # noqa: N815
    cudaStreamCaptureMode = IntEnum(  # noqa: N815
        "cudaStreamCaptureMode", ["cudaStreamCaptureModeGlobal", "cudaStreamCaptureModeThreadLocal", "cudaStreamCaptureModeRelaxed"], start=0
    )
    cudaError_t = IntEnum("cudaError_t", {"cudaSuccess": 0, "cudaErrorStreamCaptureUnsupported": 900})  # noqa: N815

    def __init__(self, cc: tuple[int, int] = (8, 7), *, fail_capture: bool = False) -> None:
        self.blocks: dict[int, ctypes.Array] = {}
        self.cc = cc
        self.streams = 0
        self.fail_capture = fail_capture
        self.captures: dict[int, list] = {}
        self.graphs: dict[int, list] = {}
        self.graph_launches = 0
        self.copies_2d: list[tuple[int, int, int, int]] = []  # (dpitch, spitch, width, height)
        self.current_device: dict[int, int] = {}
        self.waits: list[tuple[int, int]] = []
        self.errors_cleared = 0
        self.stream_devices: dict[int, int] = {}

    def capture(self, stream: int, work: Any) -> bool:
        """Record ``work`` when ``stream`` is capturing (and say so); False: run it now."""
        if stream not in self.captures:
            return False
        self.captures[stream].append(work)
        return True

    def cudaStreamBeginCapture(self, stream: int, mode: int) -> tuple[int]:  # noqa: N802
        assert mode in self.cudaStreamCaptureMode
        self.captures[stream] = []
        return (0,)

    def cudaStreamEndCapture(self, stream: int) -> tuple[int, int | None]:  # noqa: N802
        work = self.captures.pop(stream)
        if self.fail_capture:
            return self.cudaError_t.cudaErrorStreamCaptureUnsupported, None
        self.graphs[id(work)] = work
        return 0, id(work)

    def cudaGraphInstantiate(self, graph: int, flags: int) -> tuple[int, tuple[str, int]]:  # noqa: N802
        return 0, ("exec", graph)

    def cudaGraphDestroy(self, graph: int) -> tuple[int]:  # noqa: N802
        return (0,)  # the exec keeps the work (as CUDA's instantiated graphs outlive their template)

    def cudaGraphExecDestroy(self, graph_exec: tuple[str, int]) -> tuple[int]:  # noqa: N802
        del self.graphs[graph_exec[1]]
        return (0,)

    def cudaGraphLaunch(self, graph_exec: tuple[str, int], stream: int) -> tuple[int]:  # noqa: N802
        for work in self.graphs[graph_exec[1]]:
            work()
        self.graph_launches += 1
        return (0,)

    def cudaMemcpy2DAsync(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int, kind: int, stream: int) -> tuple[int]:  # noqa: N802
        assert width <= dpitch and width <= spitch
        for row in range(height):
            ctypes.memmove(dst + row * dpitch, src + row * spitch, width)
        self.copies_2d.append((dpitch, spitch, width, height))
        return (0,)

    def _alloc(self, size: int) -> tuple[int, int]:
        block = (ctypes.c_byte * size)()
        self.blocks[ctypes.addressof(block)] = block
        return 0, ctypes.addressof(block)

    cudaMalloc = cudaMallocHost = _alloc  # noqa: N815

    def cudaFree(self, ptr: int) -> tuple[int]:  # noqa: N802
        del self.blocks[ptr]
        return (0,)

    cudaFreeHost = cudaFree  # noqa: N815

    def cudaMemcpyAsync(self, dst: int, src: int, size: int, kind: int, stream: int) -> tuple[int]:  # noqa: N802
        ctypes.memmove(dst, src, size)
        return (0,)

    def cudaMemcpy(self, dst: int, src: int, size: int, kind: int) -> tuple[int]:  # noqa: N802
        ctypes.memmove(dst, src, size)
        return (0,)

    def cudaStreamCreate(self) -> tuple[int, int]:  # noqa: N802
        self.streams += 1
        self.stream_devices[self.streams] = self.current_device.get(threading.get_ident(), 0)  # the calling thread's device
        return 0, self.streams

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaSetDevice(self, device: int) -> tuple[int]:  # noqa: N802
        self.current_device[threading.get_ident()] = device  # per thread, as in the CUDA runtime
        return (0,)

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, object]:  # noqa: N802
        return 0, types.SimpleNamespace(name=b"Orin", major=self.cc[0], minor=self.cc[1])

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:  # noqa: N802
        return 0, 12090  # the cuda-python wheel's build constant, not the system's CUDA

    def cudaDriverGetVersion(self) -> tuple[int, int]:  # noqa: N802
        return 0, 12060

    def cudaEventCreate(self) -> tuple[int, int]:  # noqa: N802
        self.events = getattr(self, "events", 0) + 1
        return 0, self.events

    def cudaEventRecord(self, event: int, stream: int) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaEventElapsedTime(self, start: int, end: int) -> tuple[int, float]:  # noqa: N802
        return 0, 1.25

    def cudaEventDestroy(self, event: int) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaStreamWaitEvent(self, stream: int, event: int, flags: int) -> tuple[int]:  # noqa: N802
        self.waits.append((stream, event))
        return (0,)

    def cudaGetLastError(self) -> tuple[int]:  # noqa: N802
        self.errors_cleared += 1
        return (0,)
