"""What a serving config needs to know about one edgecv artifact (ONNX or TensorRT engine).

An ONNX file is read with ONNX Runtime (I/O names, dtypes, shapes and edgecv's metadata). A
TensorRT plan cannot be opened without TensorRT, so its contract comes from the manifest
(``model.engine.json``: the metadata, the TensorRT version, the build command) and its tensors
from the ONNX it was built from: the manifest's ``io`` section when present, else the source ONNX
named by the manifest (found next to the engine) or given explicitly. TensorRT keeps the ONNX's
tensor names and I/O types (an FP16 or INT8 graph keeps FP32 I/O), so these are the plan's.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.artifact import ModelMeta, read_sidecar
from edgecv.engine.base import TensorSpec
from edgecv.engine.registry import backend_for
from edgecv.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

# the builder's default optimization profile when neither --batch nor the metadata gives one
DEFAULT_BATCH = (1, 1, 16)


@dataclass(frozen=True)
class ArtifactSpec:
    """One model file as a server sees it.

    Attributes:
        path: the .onnx or .engine/.plan file.
        kind: ``"onnx"`` or ``"plan"``.
        meta: edgecv's metadata (from the ONNX or the engine manifest).
        inputs, outputs: the graph's tensors; ``-1`` marks a dynamic dimension.
        batch: (min, opt, max) when the batch dimension is dynamic, else None (a fixed batch).
        engine: the manifest's engine section (TensorRT version, GPU, flags), empty for ONNX.
        calib_cache: a TensorRT calibration cache next to the model (``MODEL.calib``), if any.
    """

    path: Path
    kind: str
    meta: ModelMeta
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch: tuple[int, int, int] | None
    engine: dict[str, Any] = field(default_factory=dict)
    calib_cache: Path | None = None

    @property
    def fixed_batch(self) -> int | None:
        """The batch size baked into the graph, or None when it is dynamic."""
        return None if self.batch is not None else int(self.inputs[0].shape[0])


def read_artifact(path: Path, *, onnx: Path | None = None) -> ArtifactSpec:
    """Read ``path`` (.onnx, .engine or .plan) into an :class:`ArtifactSpec`.

    Args:
        onnx: for an engine, the ONNX it was built from (default: the manifest's ``source_onnx``
            next to the engine); only its tensors are read.

    Raises:
        ArtifactError: the file, its manifest or its source ONNX is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}", hint="pass an .onnx or .engine file written by edgecv")
    if backend_for(path) == "tensorrt":
        return _read_engine(path, onnx)
    if onnx is not None:
        raise ConfigError(f"--onnx applies to TensorRT engines; {path.name} is an ONNX file", hint="drop --onnx")
    meta, inputs, outputs = _read_onnx(path)
    batch = _batch_range(meta, inputs, None)
    return ArtifactSpec(path, "onnx", meta, inputs, outputs, batch, calib_cache=_calib_cache(path))


def _read_onnx(path: Path) -> tuple[ModelMeta, tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    from edgecv.engine.onnxruntime import OnnxRuntimeEngine

    with OnnxRuntimeEngine(path, providers="cpu") as engine:
        return engine.meta, tuple(engine.inputs), tuple(engine.outputs)


def _read_engine(path: Path, onnx: Path | None) -> ArtifactSpec:
    meta, info = read_sidecar(path)
    io = info.get("io")
    if io and onnx is None:
        inputs = tuple(_spec_from_json(t) for t in io["inputs"])
        outputs = tuple(_spec_from_json(t) for t in io["outputs"])
    else:
        source = onnx or (path.parent / info["source_onnx"] if info.get("source_onnx") else None)
        if source is None or not Path(source).is_file():
            named = f" ({info['source_onnx']})" if info.get("source_onnx") else ""
            raise ArtifactError(
                f"{path.name}: its tensor names and types come from the ONNX it was built from{named}, which is not next to it",
                hint="pass it: --onnx MODEL.onnx (the file given to `edgecv build-engine`); the plan itself cannot be read without TensorRT",
            )
        _, inputs, outputs = _read_onnx(Path(source))
        log.info("%s: tensors read from %s", path.name, source)
    batch = _batch_range(meta, inputs, _build_batch(info))
    return ArtifactSpec(path, "plan", meta, inputs, outputs, batch, engine=dict(info), calib_cache=_calib_cache(path, info))


def _spec_from_json(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(str(data["name"]), tuple(int(d) for d in data["shape"]), np.dtype(data["dtype"]))


def _build_batch(info: dict[str, Any]) -> tuple[int, int, int] | None:
    """The ``--batch MIN:OPT:MAX`` the engine was built with, from its recorded build command."""
    command = info.get("build_command") or ""
    try:
        args = shlex.split(command)
    except ValueError:
        return None
    if "--batch" in args and args.index("--batch") + 1 < len(args):
        parts = args[args.index("--batch") + 1].split(":")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1]), int(parts[2])
    return None


def _batch_range(meta: ModelMeta, inputs: tuple[TensorSpec, ...], built: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    if not inputs or not inputs[0].shape:
        raise ArtifactError("the model has no image input", hint="edgecv serves models with one image input (N, C, H, W)")
    if inputs[0].shape[0] != -1:
        return None
    if built is not None:
        return built
    rng = meta.extra.get("dynamic_batch") or {}
    if rng:
        return int(rng.get("min", 1)), int(rng.get("opt", 1)), int(rng.get("max", DEFAULT_BATCH[2]))
    log.info("%s: dynamic batch with no recorded range; using %s:%s:%s (the build-engine default)", meta.arch or "model", *DEFAULT_BATCH)
    return DEFAULT_BATCH


def _calib_cache(path: Path, info: dict[str, Any] | None = None) -> Path | None:
    """A TensorRT INT8 calibration cache that belongs to this model (``MODEL.calib`` or the source ONNX's)."""
    candidates = [path.with_suffix(".calib")]
    if info and info.get("source_onnx"):
        candidates.append(path.parent / Path(info["source_onnx"]).with_suffix(".calib").name)
    stem = re.sub(r"\.int8$", "", path.stem)
    candidates.append(path.with_name(stem + ".calib"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def meta_json(meta: ModelMeta) -> str:
    """The metadata as compact JSON (what the serving configs carry, so clients need nothing else)."""
    return json.dumps(meta.to_dict(), separators=(",", ":"), sort_keys=True)
