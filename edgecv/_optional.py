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
    "cv2": ("opencv", "opencv-python-headless"),
    "onnxscript": ("export", "onnxscript"),
    "numba": ("tensorrt", "numba"),
}
# What to do on a Jetson instead of pip (JetPack ships these; PyPI's builds break CUDA / GStreamer there)
_JETSON: dict[str, str] = {
    "cv2": "JetPack's OpenCV, sudo apt install python3-opencv (do not pip-install opencv-python over it)",
    "tensorrt": "sudo apt install python3-libnvinfer",
    "torch": "NVIDIA's torch wheel for your JetPack",
}


def missing_dependency(module: str, exc: ImportError | None = None, *, extra: str | None = None, jetson: str | None = None) -> MissingDependencyError:
    """The one-line error for an optional module that is not importable: the pip line for a PC and the JetPack hint."""
    top = module.split(".")[0]
    known_extra, dist = _EXTRAS.get(top, (None, top))
    extra = extra or known_extra
    hint = f"pip install 'edgecv[{extra}]'" if extra else f"pip install {dist}"
    if top == "torch":
        hint += " (on a CPU-only PC `pip install torch --index-url https://download.pytorch.org/whl/cpu` first)"
    jetson = jetson or _JETSON.get(top)
    if jetson:
        hint = f"on a PC: {hint}; on Jetson: {jetson}"
    reason = f" ({exc})" if exc is not None and str(exc) else ""
    return MissingDependencyError(f"{module} is not importable{reason}", hint=hint)


def optional_module(exc: ImportError) -> str | None:
    """The optional module an ImportError is about (``cv2``, ``torch`` ...), or None for any other import failure."""
    name = getattr(exc, "name", None) or ""
    top = name.split(".")[0]
    return top if top in _EXTRAS else None


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
        raise missing_dependency(module, exc, extra=extra, jetson=jetson) from exc
