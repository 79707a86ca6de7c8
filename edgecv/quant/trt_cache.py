"""TensorRT calibration cache I/O: moved to :mod:`edgecv.engine.trt_cache` (the engine's calibrator reads it); re-exported here."""

from __future__ import annotations

from edgecv.engine.trt_cache import (
    ALGORITHMS,
    DEFAULT_VERSION,
    CalibrationCache,
    check_names,
    format_cache,
    hex_scale,
    parse_cache,
    read_cache,
    scale_hex,
    version_code,
    write_cache,
)

__all__ = ["ALGORITHMS", "DEFAULT_VERSION", "CalibrationCache", "check_names", "format_cache", "hex_scale", "parse_cache",
           "read_cache", "scale_hex", "version_code", "write_cache"]  # fmt: skip
