"""ONNX Runtime backend: CPU everywhere; CUDA / TensorRT execution providers when installed."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecv.artifact import ModelMeta, infer_meta
from edgecv.engine.base import BaseEngine, TensorSpec, override_meta
from edgecv.errors import ArtifactError, ConfigError, EngineError

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
# "auto" prefers a GPU provider when this onnxruntime build has one. TensorRT's EP is only used
# when asked for: its first run builds an engine, which takes minutes on a Jetson.
_AUTO_ORDER = ("CUDAExecutionProvider", "CPUExecutionProvider")
_SHORT = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def _spec(node) -> TensorSpec:  # type: ignore[no-untyped-def]
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ArtifactError(f"tensor {node.name} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(dtype))


def _shape_text(shape: Sequence[object]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, (int, str)) else "?" for d in shape) + ")"


def _output_ops(path: Path) -> list[str | None] | None:
    """The op type producing each graph output, or None when the ``onnx`` package is missing or fails."""
    from edgecv._optional import is_available

    if not is_available("onnx"):
        return None
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # unreadable here; ONNX Runtime could still run it
        return None
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return [producer.get(o.name) for o in graph.output]


def resolve_providers(providers: Sequence[str] | str | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers in (None, "auto"):
        return [p for p in _AUTO_ORDER if p in available]
    wanted = [providers] if isinstance(providers, str) else list(providers)
    resolved = [_SHORT.get(p.lower(), p) for p in wanted]
    missing = [p for p in resolved if p not in available]
    if missing:
        raise ConfigError(
            f"ONNX Runtime provider(s) {', '.join(missing)} not available (this build has {', '.join(available)})",
            hint="install onnxruntime-gpu for CUDA/TensorRT (on Jetson: the wheel for your JetPack), or load with providers=\"cpu\" (the default \"auto\" picks what is installed)",
        )
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")
    return resolved


def default_threads() -> int | None:
    """Intra-op threads when none are asked for: the cores this process may run on when that is
    fewer than the machine's (``taskset``, a container's cpuset), where ONNX Runtime would start one
    thread per core of the machine and oversubscribe; else None (ONNX Runtime's default)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    usable = len(os.sched_getaffinity(0))
    return usable if usable < (os.cpu_count() or usable) else None


def read_onnx_meta(path: Path) -> ModelMeta:
    """The model's metadata: edgecv's when present (read with onnx, so TensorRT-only graphs work too), else recognised."""
    from edgecv.graph.onnx_graph import load_onnx

    model = load_onnx(path)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    if meta is not None:
        return meta
    with OnnxRuntimeEngine(path) as engine:
        return engine.meta


class OnnxRuntimeEngine(BaseEngine):
    """An ``.onnx`` model on ONNX Runtime.

    ``session.run`` is thread-safe, so one engine may serve several threads.

    Args:
        path: the .onnx file.
        providers: "auto", a provider name ("cpu", "cuda", "tensorrt") or a list.
        threads: intra-op threads (None: :func:`default_threads`, one per core this process may use).
        spinning: let idle intra-op threads busy-wait for the next parallel section (ONNX
            Runtime's own default). Off by default: a model in edgecv shares the cores with a
            decode thread, a preprocessing thread and whatever else runs on the robot, and a
            spinning worker holds a core they need. Measured with YOLOv8n at 320 on a 2-core
            machine (``scripts/bench_run_vs_bare.py``, separate processes): idle, spinning bare
            inference ran 182 FPS against 148 without; with other processes busy, spinning
            doubled the CPU time per inference (18-21 vs 10.5-11 ms) and bare inference fell
            to 10-23 FPS against 21-88 without. Pass True for a lone model on an idle machine.
        stop_spinning: with ``spinning=True``, stop the worker threads' busy-wait when a run
            ends (several models taking turns; ``edgecv bench`` sets this then).
        task, names: override or supply metadata for ONNX files edgecv did not write.
        layout: the output layout of such a file when its shapes cannot tell (see
            :func:`edgecv.artifact.infer_meta`); ignored (must be None) with edgecv metadata.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[str] | str | None = None,
        threads: int | None = None,
        stop_spinning: bool = False,
        spinning: bool = False,
        task: str | None = None,
        names: Sequence[str] | None = None,
        layout: str | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if path.stat().st_size == 0:
            raise ArtifactError(f"{path} is empty", hint="re-export or re-copy the model file")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if not threads and (threads := default_threads()):
            log.info("ONNX Runtime: %d intra-op threads (the CPUs this process may use)", threads)
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if stop_spinning:
            options.add_session_config_entry("session.force_spinning_stop", "1")
        chosen = resolve_providers(providers)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # ORT raises InvalidProtobuf, Fail, InvalidGraph, ... as RuntimeError subclasses
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "EfficientNMS_TRT" in str(exc):
                raise ArtifactError(
                    f"{path} uses TensorRT's EfficientNMS_TRT plugin, which ONNX Runtime cannot run",
                    hint="build a TensorRT engine from it, or export with --nms onnx (runs on both ONNX Runtime and TensorRT)",
                ) from exc
            raise ArtifactError(
                f"{path} is not a loadable ONNX model (truncated, corrupt or not ONNX): {first}",
                hint="re-export it with `edgecv export`, or check the copy is complete (compare file sizes/hashes)",
            ) from exc
        if len(self.session.get_inputs()) != 1:
            listed = ", ".join(f"{i.name} {_shape_text(i.shape)} {i.type}" for i in self.session.get_inputs())
            raise ArtifactError(
                f"{path.name} has {len(self.session.get_inputs())} inputs ({listed}); edgecv feeds one image input",
                hint="export the model with only the image as input (constant or in-graph values for the others)",
            )
        inputs = [_spec(i) for i in self.session.get_inputs()]
        outputs = [_spec(o) for o in self.session.get_outputs()]
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        meta = ModelMeta.from_props(props)
        self.meta_source = "edgecv metadata" if meta else "recognised from the output layout (no edgecv metadata)"
        if meta is None:
            out_dims = [[d if isinstance(d, (int, str)) else None for d in o.shape] for o in self.session.get_outputs()]
            ops = _output_ops(path) if len(out_dims) == 1 and len(out_dims[0]) == 4 and out_dims[0][1] == 1 else None
            meta = infer_meta(
                [d if isinstance(d, (int, str)) else None for d in self.session.get_inputs()[0].shape],
                out_dims,
                task=task,
                names=names,
                foreign_props=props,
                layout=layout,
                output_ops=ops,
            )
            log.info("%s has no edgecv metadata; recognised a %s model (%s)", path.name, meta.task, meta.output_format)
        else:
            if layout not in (None, "auto"):
                raise ConfigError(f"{path.name} has edgecv metadata (layout {meta.output_format}); --layout is for files without it", hint="leave out --layout")
            meta = override_meta(meta, task, names, "the model's metadata")
        super().__init__(path, meta, inputs, outputs)
        self.providers = self.session.get_providers()
        self._output_names = [o.name for o in outputs]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._output_names, feeds)
        except Exception as exc:
            raise EngineError(f"{self.path.name}: ONNX Runtime failed: {str(exc).splitlines()[0]}") from exc
        return dict(zip(self._output_names, values))

    def _close(self) -> None:
        del self.session
