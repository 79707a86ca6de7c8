"""Choose a backend by file suffix and import it only once it is chosen."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edgecv._optional import is_available
from edgecv.artifact import ModelMeta
from edgecv.engine.base import BaseEngine
from edgecv.errors import ArtifactError, ConfigError

# backend name -> (module, class, import that must be available, suffixes)
BACKENDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "onnxruntime": ("edgecv.engine.onnxruntime", "OnnxRuntimeEngine", "onnxruntime", (".onnx",)),
    "tensorrt": ("edgecv.engine.tensorrt", "TensorRTEngine", "tensorrt", (".engine", ".plan")),
}


def available_backends() -> list[str]:
    return [name for name, (_, _, dep, _) in BACKENDS.items() if is_available(dep)]


def runs_on_cpu(path: Path) -> bool:
    """The model file would run on ONNX Runtime's CPU provider (an .onnx file, no GPU provider in this
    onnxruntime build): where its intra-op threads, and frames in flight, apply."""
    if backend_for(path) != "onnxruntime":
        return False
    from edgecv.engine.onnxruntime import resolve_providers

    return resolve_providers(None)[0] == "CPUExecutionProvider"


def backend_for(path: Path, backend: str = "auto") -> str:
    if backend != "auto":
        if backend not in BACKENDS:
            close = difflib.get_close_matches(backend, BACKENDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of: auto, {', '.join(BACKENDS)}"
            raise ConfigError(f"unknown backend {backend!r}", hint=hint)
        return backend
    suffix = Path(path).suffix.lower()
    for name, (_, _, _, suffixes) in BACKENDS.items():
        if suffix in suffixes:
            return name
    raise ArtifactError(
        f"{path}: unknown model type {suffix or '(no suffix)'!r}",
        hint="pass an .onnx file (ONNX Runtime) or an .engine/.plan file (TensorRT)",
    )


def check_model_file(path: str | Path) -> Path:
    """``path`` as a Path, once it is known to be a file (an error naming what is wrong otherwise)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"model file not found: {path}", hint="check the path (run `edgecv run` with no model to use the shipped one)")
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder, not a model file", hint="pass the .onnx or .engine file inside it")
    return path


def load_engine(path: str | Path, backend: str = "auto", **options: Any) -> BaseEngine:
    """Open a model file with the backend that fits it.

    Args:
        path: ``.onnx`` (ONNX Runtime) or ``.engine``/``.plan`` (TensorRT).
        backend: ``"auto"`` (by suffix) or a name from :data:`BACKENDS`.
        options: backend options (ONNX Runtime: ``providers``, ``threads``, ``stop_spinning``, ``task``,
            ``names``; TensorRT: ``device``, ``task``, ``names``).
    """
    path = check_model_file(path)
    name = backend_for(path, backend)
    module_name, class_name, _, _ = BACKENDS[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(path, **options)


def describe_model(path: Path) -> dict[str, Any]:
    """Everything a model file says about itself, for ``edgecv info`` (JSON-ready)."""
    from edgecv.artifact import read_sidecar

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"model file not found: {path}", hint="check the path")
    details: dict[str, Any] = {"file": str(path), "size_mb": round(path.stat().st_size / 1e6, 3)}
    if backend_for(path) == "tensorrt":
        meta, engine_info = read_sidecar(path)
        details.update({"backend": "tensorrt", "metadata": "engine manifest", **_meta_fields(meta), "engine": engine_info})
        return details
    with load_engine(path) as engine:
        details.update(
            {
                "backend": engine.backend,
                "metadata": getattr(engine, "meta_source", "edgecv metadata"),
                **_meta_fields(engine.meta),
                "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": np.dtype(s.dtype).name} for s in engine.inputs],
                "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": np.dtype(s.dtype).name} for s in engine.outputs],
                "providers": list(getattr(engine, "providers", [])),
            }
        )
    return details


def _meta_fields(meta: ModelMeta) -> dict[str, Any]:
    reason = meta.extra.get("layout_reason")
    if meta.arch == "foreign" and reason:
        how = f"recognised: {reason}"
    else:
        how = f"{meta.output_format}, from edgecv metadata (written when the model was exported)"
    data: dict[str, Any] = {"output_layout": how}
    data.update(meta.to_dict())
    data["num_classes"] = meta.num_classes
    data["names"] = list(meta.names)
    return data
