"""ONNX file edits: moved to :mod:`edgecv.graph.onnx_graph` (shared with the engine builder); re-exported here."""

from __future__ import annotations

from pathlib import Path

from edgecv.graph.onnx_graph import (
    dim_value,
    load_onnx,
    name_dynamic_dims,
    name_nodes,
    save_onnx,
    set_metadata,
    tensor_names,
    toposort,
)


def failed_path(path: Path) -> Path:
    """Where a model that failed its checks is kept for inspection: ``m.onnx`` -> ``m.failed.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix}")


__all__ = ["dim_value", "failed_path", "load_onnx", "name_dynamic_dims", "name_nodes", "save_onnx", "set_metadata", "tensor_names", "toposort"]
