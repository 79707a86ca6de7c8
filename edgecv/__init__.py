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


__all__ = ["Detections", "EdgecvError", "FrameResult", "Segmentation", "__version__", "load"]
