"""Stand-ins for the TensorRT Python objects edgecv's builder and backend touch, on the CUDA simulator.

Names are checked against TensorRT's real Python API: ``tests/trt_api/tensorrt-X.Y.json`` lists
every class, method, property and enum value of the pybind11 bindings of TensorRT X.Y (made
by ``scripts/trt_api_names.py`` from NVIDIA/TensorRT's ``python/src``). Enums (``BuilderFlag``,
``NetworkDefinitionCreationFlag``, ...) are built from those lists, each fake class names the
real class it stands for (``_real``) and ``tests/engine/test_fake_trt_api.py`` checks that
every public name a fake offers exists in the real class of that version. Objects use
``__slots__``, so touching a name the chosen version does not have raises AttributeError and
fails the test. State the tests inspect is kept under ``_`` names.

The runtime side (:func:`with_runtime`) runs on :class:`cuda_sim.CudaSim`: enqueues are
deferred stream work that reads its inputs from (and writes its outputs to) simulated device
memory when the stream runs.
"""

from __future__ import annotations

import json
import types
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from cuda_sim import CudaSim

API_DIR = Path(__file__).with_name("trt_api")


@cache
def api(version: str) -> dict[str, Any]:
    """The real API names of the newest listed TensorRT release <= ``version`` of the same major."""
    want = tuple(int(v) for v in version.split(".")[:2])
    files = sorted((tuple(int(x) for x in f.stem.split("-")[1].split(".")), f) for f in API_DIR.glob("tensorrt-*.json"))
    chosen = [f for v, f in files if v[0] == want[0] and v <= want]
    if not chosen:
        raise ValueError(f"no TensorRT {want[0]}.x API list <= {version} in {API_DIR}")
    return json.loads(chosen[-1].read_text())


def _enum(version: str, name: str) -> type[IntEnum]:
    return IntEnum(name, api(version)["classes"][name], start=0)


class Logger:
    _real = "Logger"
    __slots__ = ("min_severity",)
    VERBOSE, INFO, WARNING, ERROR, INTERNAL_ERROR = 4, 3, 2, 1, 0  # ILogger.Severity, exported onto the class

    def __init__(self, min_severity: int = 2) -> None:
        self.min_severity = min_severity


class ParserError:
    _real = "ParserError"
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
    _real = "ITensor"
    __slots__ = ("name", "shape")

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, shape


class Network:
    _real = "INetworkDefinition"
    __slots__ = ("flags", "_inputs")

    def __init__(self, flags: int) -> None:
        self.flags, self._inputs = flags, []

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    def get_input(self, i: int) -> Tensor:
        return self._inputs[i]


class Profile:
    _real = "IOptimizationProfile"
    __slots__ = ("_shapes",)

    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self._shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class TimingCache:
    _real = "ITimingCache"
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data or b"fresh"

    def serialize(self) -> bytes:
        return b"timing:" + self._data


def make(version: str, *, dla_cores: int = 0, parse_errors: list[tuple[str, int, str, str]] | None = None,
         input_shape: tuple[int, ...] = (-1, 3, -1, -1), build_fails: bool = False) -> Any:  # fmt: skip
    """A ``tensorrt`` module stand-in for ``version`` ("10.3.0", "10.9.0", "11.1.0", ...), names from its API list."""
    major = int(version.split(".")[0])
    BuilderFlag = _enum(version, "BuilderFlag")
    config_slots = ["flags", "default_device_type", "DLA_core", "builder_optimization_level", "hardware_compatibility_level",
                    "progress_monitor", "_pool", "_profiles", "_timing_cache", "_calibration_profile"]  # fmt: skip
    if major < 11:
        config_slots += ["int8_calibrator"]

    class Config:
        _real = "IBuilderConfig"
        __slots__ = tuple(config_slots)

        def __init__(self) -> None:
            self.flags: set = set()
            self._profiles: list = []

        def set_flag(self, flag: Any) -> None:
            self.flags.add(flag.name)

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self._pool = (pool, size)

        def add_optimization_profile(self, profile: Profile) -> int:
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self._timing_cache = cache
            return True

    if major < 11:

        def set_calibration_profile(self: Any, profile: Profile) -> None:
            self._calibration_profile = profile

        Config.set_calibration_profile = set_calibration_profile  # type: ignore[attr-defined]

    class Builder:
        _real = "Builder"
        __slots__ = ("logger", "num_DLA_cores", "_network", "_config", "_built")

        def __init__(self, logger: Logger) -> None:
            self.logger, self.num_DLA_cores = logger, dla_cores
            module._last_builder = self

        def create_network(self, flags: int = 0) -> Network:
            self._network = Network(flags)
            return self._network

        def create_builder_config(self) -> Config:
            self._config = Config()
            return self._config

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            self._built = True
            monitor = getattr(config, "progress_monitor", None)
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            if build_fails:
                return None
            plan = b"PLAN:" + ",".join(sorted(config.flags)).encode()
            profiles = getattr(config, "_profiles", [])
            if profiles and "images" in profiles[0]._shapes:  # the runtime side enforces it, as TensorRT does
                plan += b"|PROFILE:" + json.dumps(profiles[0]._shapes["images"]).encode()
            return plan

    class OnnxParser:
        _real = "OnnxParser"
        __slots__ = ("_network", "_errors")

        def __init__(self, network: Network, logger: Logger) -> None:
            self._network, self._errors = network, [ParserError(*e) for e in (parse_errors or [])]

        def parse(self, model: bytes, path: str | None = None) -> bool:
            assert isinstance(model, bytes) and model
            self._network._inputs.append(Tensor("images", input_shape))
            return not self._errors

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, i: int) -> ParserError:
            return self._errors[i]

    class IProgressMonitor:
        _real = "IProgressMonitor"

        def __init__(self) -> None:
            pass

    module = types.SimpleNamespace(
        __version__=version,
        Logger=Logger,
        Builder=Builder,
        OnnxParser=OnnxParser,
        BuilderFlag=BuilderFlag,
        MemoryPoolType=_enum(version, "MemoryPoolType"),
        DeviceType=_enum(version, "DeviceType"),
        HardwareCompatibilityLevel=_enum(version, "HardwareCompatibilityLevel"),
        NetworkDefinitionCreationFlag=_enum(version, "NetworkDefinitionCreationFlag"),
        TensorIOMode=_enum(version, "TensorIOMode"),
        IProgressMonitor=IProgressMonitor,
        _last_builder=None,
        _version=version,
    )
    if "IInt8EntropyCalibrator2" in api(version)["classes"]:

        class IInt8EntropyCalibrator2:
            _real = "IInt8EntropyCalibrator2"

            def __init__(self) -> None:
                pass

        module.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return module


def with_runtime(trt: Any, sim: CudaSim, deserialized: list | None = None, *, nms: bool = False, dla_cores: int = 0) -> Any:
    """Add the runtime side to ``trt``: an engine with ``images`` (-1, 3, -1, -1) -> ``output0`` (B, 8, 4) = per-image channel means.

    ``nms``: the outputs of an in-graph NMS instead, 8 rows: image b has ``num_dets`` b + 2, ``boxes`` rows
    filled with (b, row, mean, 0), ``scores``/``classes`` = row. ``execute_async_v3`` queues the network
    on the simulator's stream with the tensor addresses and shapes of that moment (as a CUDA graph fixes
    them); it reads ``images`` from device memory and writes the outputs there when the stream runs.
    """
    names = ["images", "num_dets", "boxes", "scores", "classes"] if nms else ["images", "output0"]
    deserialized = deserialized if deserialized is not None else []
    TensorIOMode = trt.TensorIOMode

    class Context:
        _real = "IExecutionContext"
        __slots__ = ("_shapes", "_addresses", "_enqueues", "_profile")

        def __init__(self, profile: tuple) -> None:
            self._profile = profile
            self._shapes: dict[str, tuple] = {}
            self._addresses: dict[str, int] = {}
            self._enqueues = 0

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            if name != "images" or len(shape) != 4 or shape[1] != 3:
                return False
            lo, _, hi = self._profile
            if not all(a <= d <= b for a, d, b in zip(lo, shape, hi)):  # outside the optimization profile
                return False
            self._shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            b = self._shapes["images"][0]
            return {"images": self._shapes["images"], "output0": (b, 8, 4), "num_dets": (b, 1), "boxes": (b, 8, 4), "scores": (b, 8), "classes": (b, 8)}[name]

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            if name not in names or int(ptr) % 256:  # "the pointer must have at least 256-byte alignment"
                return False
            self._addresses[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if set(self._addresses) != set(names) or "images" not in self._shapes:
                return False  # TensorRT: an unset input shape or tensor address fails the enqueue
            addresses, shape = dict(self._addresses), self._shapes["images"]
            sim.enqueue(stream_handle, lambda: self._run(addresses, shape), cost_ms=2.0, what="TensorRT enqueue")
            return True

        def _run(self, addresses: dict[str, int], shape: tuple) -> None:
            self._enqueues += 1
            n = int(np.prod(shape))
            x = np.frombuffer(sim.device_read(addresses["images"], n * 4, "TensorRT input images"), np.float32).reshape(shape)
            b, mean = shape[0], x.mean(axis=(1, 2, 3))
            if nms:
                rows = np.arange(8, dtype=np.float32)
                boxes = np.zeros((b, 8, 4), np.float32)
                boxes[..., 0], boxes[..., 1], boxes[..., 2] = np.arange(b)[:, None], rows, mean[:, None]
                outs = {"num_dets": np.arange(2, b + 2, dtype=np.int32)[:, None], "boxes": boxes,
                        "scores": np.tile(rows, (b, 1)), "classes": np.tile(rows.astype(np.int32), (b, 1))}  # fmt: skip
            else:
                outs = {"output0": np.zeros((b, 8, 4), np.float32)}
                outs["output0"][:, :3, 0] = x.mean(axis=(2, 3))
            for name, out in outs.items():
                sim.device_write(addresses[name], out.tobytes(), f"TensorRT output {name}")

    class Engine:
        _real = "ICudaEngine"
        num_io_tensors = len(names)

        def __init__(self, profile: tuple | None = None) -> None:
            # a plan from the fake builder carries its profile; a hand-written plan gets a wide one
            self._profile = profile or ((1, 3, 32, 32), (1, 3, 640, 640), (16, 3, 4096, 4096))

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
            if name != "images" or profile_index != 0:
                return []
            return [tuple(d) for d in self._profile]

        def get_tensor_name(self, i: int) -> str:
            return names[i]

        def get_tensor_mode(self, name: str) -> Any:
            return TensorIOMode.INPUT if name == "images" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> str:
            return "int32" if name in ("num_dets", "classes") else "float32"

        def get_tensor_shape(self, name: str) -> tuple:
            shapes = {"images": (-1, 3, -1, -1), "output0": (-1, 8, -1), "num_dets": (-1, 1), "boxes": (-1, 8, 4), "scores": (-1, 8), "classes": (-1, 8)}
            return shapes[name]

        def create_execution_context(self) -> Context:
            return Context(self._profile)

    class Runtime:
        _real = "Runtime"
        __slots__ = ("engine_host_code_allowed", "DLA_core")  # host code: TensorRT >= 8.6, for version-compatible plans
        num_DLA_cores = dla_cores  # noqa: N815 (read-only in TensorRT)

        def __init__(self, logger: object) -> None:
            self.engine_host_code_allowed = False
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            deserialized.append((data, self.engine_host_code_allowed))
            if not data.startswith(b"PLAN"):
                return None
            _, _, profile = data.partition(b"|PROFILE:")
            return Engine(tuple(tuple(d) for d in json.loads(profile)) if profile else None)

    trt.Runtime = Runtime
    trt.nptype = np.dtype
    trt._sim = sim
    return trt




FakeCudart = CudaSim  # the one CUDA stand-in: the strict simulator (older tests import this name)


def build_engine_file(onnx_src: Path, folder: Path, version: str = "10.3.0") -> Path:
    """``folder/det.engine`` built by the real builder on the fake TensorRT ``version`` from a copy of ``onnx_src``.

    The builder had no GPU to read, so its manifest records the one :class:`CudaSim` reports (Orin, 8.7).
    """
    import shutil

    from edgecv.engine.builder import build_engine

    onnx_path = Path(shutil.copy(onnx_src, folder / "det.onnx"))
    build_engine(onnx_path, folder / "det.engine", trt=make(version))
    manifest = folder / "det.engine.json"
    data = json.loads(manifest.read_text())
    data["engine"] |= {"gpu": "Orin", "compute_capability": "8.7"}
    manifest.write_text(json.dumps(data))
    return folder / "det.engine"
