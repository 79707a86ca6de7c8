"""Mixed-precision FP16 graphs: moved to :mod:`edgecv.graph.fp16` (the engine builder uses it too); re-exported here."""

from __future__ import annotations

from edgecv.graph.fp16 import DEFAULT_KEEP, HEAVY_OPS, convert_fp16, tail_nodes

__all__ = ["DEFAULT_KEEP", "HEAVY_OPS", "convert_fp16", "tail_nodes"]
