"""Stage 1: PyTorch -> ONNX with metadata, simplification and a parity check (``export`` extra)."""

from edgecv.export.onnx_export import ExportConfig, ExportReport, export_model

__all__ = ["ExportConfig", "ExportReport", "export_model"]
