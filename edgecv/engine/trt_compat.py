"""Every TensorRT-version-dependent call in one place (DESIGN principle 5).

TensorRT 10 (JetPack 6) has implicit INT8 calibrators and weak-typing builder flags;
TensorRT 11 removed both (INT8 comes from Q/DQ, FP16 from the ONNX). cuda-python moved
its runtime module from ``cuda.cudart`` to ``cuda.bindings.runtime`` (12.6+).
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from edgecv._optional import require
from edgecv.errors import EngineError, MissingDependencyError

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
