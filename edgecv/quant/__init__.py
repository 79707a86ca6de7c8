"""Stage 3: precision as an ONNX-to-ONNX step (mixed-precision FP16; INT8 Q/DQ), ``export`` extra.

Submodules import ``onnx`` inside their functions, so this package imports with the
runtime dependencies only.
"""

from edgecv.graph.fp16 import DEFAULT_KEEP, convert_fp16, tail_nodes
from edgecv.quant.calibrate import CalibrateOptions, CalibrationReport, calibrate

__all__ = ["DEFAULT_KEEP", "CalibrateOptions", "CalibrationReport", "calibrate", "convert_fp16", "tail_nodes"]
