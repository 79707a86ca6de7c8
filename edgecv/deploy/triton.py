"""A Triton Inference Server model repository from edgecv artifacts.

For each model ``REPO/<name>/config.pbtxt``, ``REPO/<name>/labels.txt`` and
``REPO/<name>/<version>/model.onnx`` (platform ``onnxruntime_onnx``) or ``model.plan``
(``tensorrt_plan``). Everything in the config comes from the artifact's own contract:

    artifact                                   config.pbtxt
    graph inputs/outputs (name, dtype, dims)   input/output name, data_type, dims (batch dim removed)
    dynamic batch MIN:OPT:MAX                  max_batch_size MAX; dynamic_batching preferred_batch_size [OPT, MAX]
    fixed batch                                max_batch_size 0, dims with the batch dim
    class names                                labels.txt, label_filename on the class output
    the whole metadata (ModelMeta)             parameters "edgecv.meta" (JSON): clients need nothing else

With ``ensemble`` two Python-backend models run edgecv's own preprocessing (decode + letterbox)
and postprocessing (decode, NMS, boxes in original-image pixels) around the network, and an
ensemble ``<name>_ensemble`` chains them: a client sends an encoded image and gets boxes back.
With ``backend="python"`` the network itself runs in a Python-backend model on edgecv's ONNX
Runtime engine (for servers without the ONNX Runtime backend, e.g. PyTriton's CPU build).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.artifact import atomic_output, atomic_write_bytes
from edgecv.deploy.pbtxt import Enum, Map, dumps
from edgecv.deploy.spec import ArtifactSpec, meta_json, read_artifact
from edgecv.engine.base import TensorSpec
from edgecv.errors import ConfigError

log = logging.getLogger(__name__)

TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
DEVICES = ("gpu", "cpu")
BACKENDS = ("auto", "python")
LABELS = "labels.txt"
META_KEY = "edgecv.meta"
# names of the ensemble's own tensors
IMAGE, TRANSFORM = "IMAGE", "TRANSFORM"
DET_OUTPUTS = (("BOXES", "TYPE_FP32", [-1, 4]), ("SCORES", "TYPE_FP32", [-1]), ("CLASSES", "TYPE_INT32", [-1]))
MASKS = ("MASKS", "TYPE_BOOL", [-1, -1, -1])
SEG_OUTPUTS = (("CLASS_MAP", "TYPE_INT32", [-1, -1]),)
TRANSFORM_DIMS = 7  # src h, src w, dst h, dst w, scale, pad x, pad y


@dataclass(frozen=True)
class TritonConfig:
    """How to serve the models.

    Attributes:
        version: the model version folder (Triton serves the latest by default).
        instances: model instances per device (``instance_group.count``).
        device: ``"gpu"`` (KIND_GPU) or ``"cpu"`` (KIND_CPU; ONNX only, a plan needs a GPU).
        gpus: GPU ids for the instances (None: all of the server's GPUs).
        max_batch: cap the server's batch below the artifact's maximum (None: the artifact's).
        queue_delay_us: how long the dynamic batcher may wait to fill a preferred batch.
        ensemble: add ``<name>_pre``, ``<name>_post`` and ``<name>_ensemble`` (encoded image in, boxes out).
        backend: ``"auto"`` (the ONNX Runtime / TensorRT backend by file type) or ``"python"``
            (the ONNX on edgecv's ONNX Runtime engine inside a Python-backend model).
        conf, iou, max_det: the postprocessing thresholds of the ensemble.
        name: the model's name in the repository (one model only; default: the file's stem).
    """

    version: int = 1
    instances: int = 1
    device: str = "gpu"
    gpus: tuple[int, ...] | None = None
    max_batch: int | None = None
    queue_delay_us: int = 100
    ensemble: bool = False
    backend: str = "auto"
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300
    name: str | None = None

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ConfigError(f"--version must be >= 1, got {self.version}", hint="Triton version folders are 1, 2, ...")
        if self.instances < 1:
            raise ConfigError(f"--instances must be >= 1, got {self.instances}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}", hint=f"use one of {', '.join(DEVICES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ConfigError(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.queue_delay_us < 0:
            raise ConfigError(f"--queue-delay must be >= 0 microseconds, got {self.queue_delay_us}")
        if not 0 <= self.conf <= 1 or not 0 <= self.iou <= 1 or self.max_det < 1:
            raise ConfigError(f"conf and iou must be in [0, 1] and max_det >= 1, got {self.conf}, {self.iou}, {self.max_det}")
        if self.gpus is not None and self.device != "gpu":
            raise ConfigError("--gpus applies to --device gpu", hint="drop --gpus or use --device gpu")
        if self.name is not None:
            check_name(self.name)


@dataclass(frozen=True)
class DeployedModel:
    """What was written for one artifact: its model folders (core first) and their config files."""

    name: str
    spec: ArtifactSpec
    configs: tuple[Path, ...]
    ensemble: str | None


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"{name!r} is not a usable Triton model name", hint="use letters, digits, '_', '-' and '.'")
    return name


def model_name(path: Path) -> str:
    """A Triton model name from a file name: ``shapes-det.int8.onnx`` -> ``shapes-det.int8``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem).lstrip("._-")
    return name or "model"


def dims_of(spec: TensorSpec, batched: bool) -> list[int]:
    return [int(d) for d in (spec.shape[1:] if batched else spec.shape)]


def _tensor(spec: TensorSpec, batched: bool, label: bool = False) -> dict[str, Any]:
    dtype = TRITON_DTYPES.get(np.dtype(spec.dtype).name)
    if dtype is None:
        raise ConfigError(f"tensor {spec.name} has type {np.dtype(spec.dtype).name}, which Triton has no type for")
    dims = dims_of(spec, batched)
    entry: dict[str, Any] = {"name": spec.name, "data_type": Enum(dtype), "dims": dims or [1]}
    if not dims:  # (B,) with the batch removed is a scalar per item: Triton wants dims [1] reshaped to []
        entry["reshape"] = {"shape": []}
    if label:
        entry["label_filename"] = LABELS
    return entry


def class_output(spec: ArtifactSpec) -> str | None:
    """The output that carries class ids or scores (where Triton's labels file belongs)."""
    names = [o.name for o in spec.outputs]
    fmt = spec.meta.output_format
    if fmt == "nms":
        return "classes" if "classes" in names else None
    if fmt == "tv_detect":
        return names[2] if len(names) > 2 else None
    if fmt == "yolov8_seg":
        return next((o.name for o in spec.outputs if len(o.shape) == 3), None)
    return names[0] if names else None


def batching(spec: ArtifactSpec, cfg: TritonConfig) -> tuple[int, list[int]]:
    """``max_batch_size`` and the dynamic batcher's preferred sizes for ``spec``."""
    if spec.batch is None:
        if cfg.max_batch is not None and cfg.max_batch != spec.fixed_batch:
            raise ConfigError(
                f"{spec.path.name} has a fixed batch of {spec.fixed_batch}; --max-batch {cfg.max_batch} cannot apply",
                hint="export with --dynamic-batch MIN:OPT:MAX to serve batches",
            )
        return 0, []
    lo, opt, hi = spec.batch
    top = hi
    if cfg.max_batch is not None:
        if cfg.max_batch > hi:
            raise ConfigError(
                f"--max-batch {cfg.max_batch} is above {spec.path.name}'s batch range {lo}:{opt}:{hi}",
                hint=f"use --max-batch {hi} or less, or rebuild with a larger range (--batch {lo}:{opt}:{cfg.max_batch})",
            )
        top = cfg.max_batch
    preferred = sorted({b for b in (opt, top) if 1 < b <= top})
    return top, preferred


def core_config(spec: ArtifactSpec, name: str, cfg: TritonConfig) -> dict[str, Any]:
    """The ``ModelConfig`` fields of the network itself."""
    max_batch, preferred = batching(spec, cfg)
    batched = max_batch > 0
    if spec.kind == "plan":
        if cfg.backend == "python":
            raise ConfigError(f"--backend python runs ONNX files; {spec.path.name} is a TensorRT plan", hint="deploy the .onnx, or drop --backend")
        if cfg.device == "cpu":
            raise ConfigError(f"{spec.path.name} is a TensorRT plan, which runs only on a GPU", hint="use --device gpu, or deploy the .onnx for CPU instances")
        head: dict[str, Any] = {"name": name, "platform": "tensorrt_plan"}
    elif cfg.backend == "python":
        head = {"name": name, "backend": "python"}
    else:
        head = {"name": name, "platform": "onnxruntime_onnx"}
    label = class_output(spec)
    config: dict[str, Any] = {
        **head,
        "max_batch_size": max_batch,
        "input": [_tensor(t, batched) for t in spec.inputs],
        "output": [_tensor(t, batched, label=t.name == label) for t in spec.outputs],
    }
    if batched:
        config["dynamic_batching"] = {"preferred_batch_size": preferred, "max_queue_delay_microseconds": cfg.queue_delay_us}
    config["instance_group"] = [_instances(cfg)]
    params = Map({META_KEY: {"string_value": meta_json(spec.meta)}})
    if spec.engine:
        params["edgecv.engine"] = {"string_value": json.dumps(spec.engine, sort_keys=True, separators=(",", ":"))}
    if cfg.backend == "python":
        params["edgecv.step"] = {"string_value": "onnxruntime"}
    config["parameters"] = params
    return config


def _instances(cfg: TritonConfig) -> dict[str, Any]:
    group: dict[str, Any] = {"count": cfg.instances, "kind": Enum("KIND_GPU" if cfg.device == "gpu" else "KIND_CPU")}
    if cfg.gpus:
        group["gpus"] = list(cfg.gpus)
    return group


def ensemble_configs(spec: ArtifactSpec, name: str, cfg: TritonConfig) -> dict[str, dict[str, Any]]:
    """``{model name: ModelConfig fields}`` for the pre/post Python models and the ensemble around ``name``."""
    core_batch, _ = batching(spec, cfg)
    # one image per request through pre and post; the network's dynamic batcher merges concurrent requests
    batch = 1 if core_batch > 0 else 0
    lead = [] if batch else [1]
    image = spec.inputs[0]
    if len(spec.inputs) != 1:
        raise ConfigError(f"--ensemble needs a model with one image input; {spec.path.name} has {len(spec.inputs)}")
    if spec.batch is None and spec.fixed_batch != 1:
        raise ConfigError(f"--ensemble sends one image per request; {spec.path.name} has a fixed batch of {spec.fixed_batch}")
    h, w = spec.meta.input_size
    if spec.meta.dynamic:  # letterboxed to the smallest stride multiple that fits: the size varies per image
        h, w = -1, -1
    pre_dims = [*lead, *_image_dims(image, h, w)]
    instances = [{"count": cfg.instances, "kind": Enum("KIND_CPU")}]
    meta = Map({META_KEY: {"string_value": meta_json(spec.meta)}})
    pre = {
        "name": f"{name}_pre",
        "backend": "python",
        "max_batch_size": batch,
        "input": [{"name": IMAGE, "data_type": Enum("TYPE_UINT8"), "dims": [-1]}],
        "output": [
            {"name": image.name, "data_type": Enum(TRITON_DTYPES[np.dtype(image.dtype).name]), "dims": pre_dims},
            {"name": TRANSFORM, "data_type": Enum("TYPE_FP32"), "dims": [*lead, TRANSFORM_DIMS]},
        ],
        "instance_group": instances,
        "parameters": Map({**meta, "edgecv.step": {"string_value": "preprocess"}}),
    }
    results = _result_outputs(spec)
    core_outputs = [_tensor(t, batched=batch > 0) for t in spec.outputs]
    post = {
        "name": f"{name}_post",
        "backend": "python",
        "max_batch_size": batch,
        "input": [*core_outputs, {"name": TRANSFORM, "data_type": Enum("TYPE_FP32"), "dims": [*lead, TRANSFORM_DIMS]}],
        "output": [{"name": n, "data_type": Enum(t), "dims": d, **({"label_filename": LABELS} if n == "CLASSES" else {})} for n, t, d in results],
        "instance_group": instances,
        "parameters": Map({
            **meta,
            "edgecv.step": {"string_value": "postprocess"},
            "conf": {"string_value": str(cfg.conf)},
            "iou": {"string_value": str(cfg.iou)},
            "max_det": {"string_value": str(cfg.max_det)},
        }),
    }  # fmt: skip
    for entry in post["input"]:
        entry.pop("label_filename", None)
    ens = {
        "name": f"{name}_ensemble",
        "platform": "ensemble",
        "max_batch_size": batch,
        "input": [{"name": IMAGE, "data_type": Enum("TYPE_UINT8"), "dims": [-1]}],
        "output": [{"name": n, "data_type": Enum(t), "dims": d} for n, t, d in results],
        "ensemble_scheduling": {
            "step": [
                {"model_name": f"{name}_pre", "model_version": -1, "input_map": Map({IMAGE: IMAGE}),
                 "output_map": Map({image.name: image.name, TRANSFORM: TRANSFORM})},
                {"model_name": name, "model_version": -1, "input_map": Map({image.name: image.name}),
                 "output_map": Map({o.name: o.name for o in spec.outputs})},
                {"model_name": f"{name}_post", "model_version": -1,
                 "input_map": Map({**{o.name: o.name for o in spec.outputs}, TRANSFORM: TRANSFORM}),
                 "output_map": Map({n: n for n, _, _ in results})},
            ]
        },
        "parameters": meta,
    }  # fmt: skip
    return {pre["name"]: pre, post["name"]: post, ens["name"]: ens}


def _image_dims(image: TensorSpec, h: int, w: int) -> list[int]:
    """The per-image input dims the preprocessing model emits."""
    c_first = image.shape[1] in (1, 3)
    return [3, h, w] if c_first else [h, w, 3]


def _result_outputs(spec: ArtifactSpec) -> tuple[tuple[str, str, list[int]], ...]:
    if spec.meta.task == "segment":
        return SEG_OUTPUTS
    names = {o.name for o in spec.outputs}
    with_masks = spec.meta.output_format == "yolov8_seg" or "mask_coefs" in names or (spec.meta.output_format == "tv_detect" and len(spec.outputs) > 3)
    return (*DET_OUTPUTS, MASKS) if with_masks else DET_OUTPUTS


def model_file(spec: ArtifactSpec, cfg: TritonConfig) -> str:
    return "model.plan" if spec.kind == "plan" else "model.onnx"


PYTHON_MODEL = '''"""Generated by `edgecv deploy triton`: {what} for {source}, as a Triton Python-backend model.

Needs only edgecv's runtime (numpy, OpenCV, ONNX Runtime: `pip install edgecv[opencv]`) in the
server's Python environment; the model's contract is in config.pbtxt (parameters "edgecv.meta").
"""

from edgecv.deploy.python_backend import TritonPythonModel  # noqa: F401
'''


def write_repository(models: Sequence[Path], repo: Path, cfg: TritonConfig, *, onnx: Path | None = None) -> list[DeployedModel]:
    """Write a Triton model repository under ``repo`` for each of ``models``.

    Every file is written to a temp file and renamed: an existing good repository is only replaced
    by complete files. Models are checked before anything is written.

    Args:
        onnx: for one TensorRT engine, the ONNX it was built from (see :func:`read_artifact`).

    Raises:
        ConfigError: options that do not fit a model, or two models with the same name.
        ArtifactError: a model or its manifest is missing or unreadable.
    """
    if not models:
        raise ConfigError("no models given", hint="edgecv deploy triton MODEL.onnx [MODEL.engine ...] -o REPO")
    if cfg.name is not None and len(models) > 1:
        raise ConfigError(f"--name names one model; {len(models)} were given", hint="drop --name (names come from the file names)")
    if onnx is not None and len(models) > 1:
        raise ConfigError("--onnx describes one engine; several models were given", hint="deploy that engine on its own")
    plans: list[tuple[ArtifactSpec, str, dict[str, dict[str, Any]]]] = []
    taken: dict[str, Path] = {}
    for path in models:
        spec = read_artifact(path, onnx=onnx)
        name = cfg.name or model_name(spec.path)
        configs = {name: core_config(spec, name, cfg)}
        if cfg.ensemble:
            configs |= ensemble_configs(spec, name, cfg)
        for model in configs:
            if model in taken:
                raise ConfigError(
                    f"{spec.path} and {taken[model]} would both be Triton model {model!r}",
                    hint="deploy them into different repositories, or rename one file",
                )
            taken[model] = spec.path
        plans.append((spec, name, configs))
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    deployed = []
    for spec, name, configs in plans:
        written = []
        for model, config in configs.items():
            folder = repo / model
            version = folder / str(cfg.version)
            version.mkdir(parents=True, exist_ok=True)
            step = config.get("parameters", {}).get("edgecv.step", {}).get("string_value")
            if model == name:
                _copy(spec.path, version / model_file(spec, cfg))
            if step is not None:
                what = {"onnxruntime": "the network on ONNX Runtime", "preprocess": "edgecv's preprocessing", "postprocess": "edgecv's postprocessing"}[step]
                atomic_write_bytes(version / "model.py", PYTHON_MODEL.format(what=what, source=spec.path.name).encode())
            if model in (name, f"{name}_post"):
                atomic_write_bytes(folder / LABELS, ("\n".join(spec.meta.names) + "\n").encode())
            atomic_write_bytes(folder / "config.pbtxt", dumps(config).encode())
            written.append(folder / "config.pbtxt")
        deployed.append(DeployedModel(name, spec, tuple(written), f"{name}_ensemble" if cfg.ensemble else None))
        log.debug("wrote Triton model %s (%s) from %s", name, configs[name].get("platform") or configs[name].get("backend"), spec.path)
    return deployed


def _copy(src: Path, dest: Path) -> None:
    """Copy a (possibly large) model file into place through a temp file and a rename."""
    if dest.exists() and dest.stat().st_size == src.stat().st_size and dest.read_bytes() == src.read_bytes():
        return
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)
