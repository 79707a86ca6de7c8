"""edgecv: PyTorch detectors and segmenters to a fast, reliable real-time loop on Jetson and NVIDIA GPUs.

Only light names are re-exported here; importing edgecv never imports torch,
onnx or TensorRT.
"""

from __future__ import annotations

__version__ = "0.1.0"

from edgecv.errors import EdgecvError  # noqa: E402
from edgecv.results import Detections, FrameResult, Segmentation  # noqa: E402


def load(path, **kwargs):  # type: ignore[no-untyped-def]
    """Load a model file (.onnx, .engine) and return a callable Detector or Segmenter.

    See :func:`edgecv.api.load`.
    """
    from edgecv.api import load as _load

    return _load(path, **kwargs)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """``edgecv.stream`` (callable: ``edgecv.stream(model, sources, ...)``) imports on first use (OpenCV)."""
    if name == "stream":
        import importlib

        return importlib.import_module("edgecv.stream")
    raise AttributeError(f"module 'edgecv' has no attribute {name!r}")


__all__ = ["Detections", "EdgecvError", "FrameResult", "Segmentation", "__version__", "load", "stream"]
