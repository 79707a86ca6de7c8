"""TensorRT 10 implicit INT8 calibrator: moved to :mod:`edgecv.engine.trt_calibrator` (TensorRT runtime code the builder uses); re-exported here."""

from __future__ import annotations

from edgecv.engine.trt_calibrator import CalibrationBatches, make_entropy_calibrator

__all__ = ["CalibrationBatches", "make_entropy_calibrator"]
