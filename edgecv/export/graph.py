"""ONNX file edits: moved to :mod:`edgecv.graph.onnx_graph` (shared with the engine builder); re-exported here."""

from __future__ import annotations

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

__all__ = ["dim_value", "load_onnx", "name_dynamic_dims", "name_nodes", "save_onnx", "set_metadata", "tensor_names", "toposort"]
