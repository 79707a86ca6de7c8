"""Optional heavy dependencies, imported only inside the functions that need them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edgecv.errors import MissingDependencyError

# import name -> (extra that provides it, pip distribution name)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("export", "torch"),
    "torchvision": ("torchvision", "torchvision"),
    "onnx": ("export", "onnx"),
    "onnxslim": ("export", "onnxslim"),
    "torch_pruning": ("export", "torch-pruning"),
    "pycocotools": ("eval", "pycocotools"),
    "tensorrt": ("tensorrt", "tensorrt"),
    "cuda": ("tensorrt", "cuda-python"),
    "imageio_ffmpeg": ("test", "imageio-ffmpeg"),
    "matplotlib": ("plot", "matplotlib"),
    "tritonclient": ("triton", "tritonclient[http,grpc]"),
}


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, extra: str | None = None, jetson: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the install command.

    Args:
        module: import name, e.g. ``"torch"`` or ``"onnx"``.
        extra: the edgecv extra that provides it (looked up when omitted).
        jetson: the JetPack/apt command to suggest on a Jetson board, if different.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        known_extra, dist = _EXTRAS.get(top, (None, top))
        extra = extra or known_extra
        hint = f"pip install 'edgecv[{extra}]'" if extra else f"pip install {dist}"
        if top == "torch":
            hint += " (on Jetson use NVIDIA's torch wheel for your JetPack; on a CPU-only PC `pip install torch --index-url https://download.pytorch.org/whl/cpu` first)"
        if jetson:
            hint += f"; on Jetson: {jetson}"
        raise MissingDependencyError(f"{module} is not importable ({exc})", hint=hint) from exc
