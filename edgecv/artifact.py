"""Model metadata: the contract an artifact carries about itself.

Every ONNX file edgecv writes stores a :class:`ModelMeta` in its ``metadata_props``
(one ``edgecv.<field>`` key per field, JSON-encoded values), so ``run``, ``eval``,
``info`` and the Python API need nothing but the file. Reading uses ONNX Runtime
only (no ``onnx`` package); writing needs the ``export`` extra. A TensorRT engine
carries the same fields in a sidecar JSON next to the plain plan.

ONNX files without edgecv metadata are still usable when their layout is
recognised (:func:`infer_meta`): a YOLOv8-style detector or a segmenter whose
logits match the input size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv import __version__
from edgecv.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

META_PREFIX = "edgecv."
TASKS = ("detect", "segment")
# Output layouts edgecv can decode on the host.
#   yolov8:     one output (B, 4 + nc, anchors): cx, cy, w, h in input pixels, then class scores
#   seg_logits: one output (B, nc, H, W): per-pixel class logits at input resolution
#   yolov5:     one output (B, anchors, 5 + nc): cx, cy, w, h, objectness, class scores (Ultralytics YOLOv5)
#   nms:        NMS inside the graph, the EfficientNMS layout: num_dets (B, 1), boxes (B, K, 4) xyxy in
#               input pixels, scores (B, K), classes (B, K); parameters in ``extra["nms"]``
#   yolov8_seg: Ultralytics YOLOv8/11-seg, two outputs: (B, 4 + nc + 32, anchors) as yolov8 plus 32 mask
#               coefficients per anchor, and mask prototypes (B, 32, H/4, W/4); task "detect" with masks
#   tv_detect:  torchvision detectors (edgecv.zoo.tv), decoded and suppressed in the graph, batch 1: boxes (N, 4)
#               xyxy in input pixels, scores (N,), labels (N,) int64 where label 0 is torchvision's background
#               and label k is class id k - 1 (``names`` has no background entry)
#   yolox:      YOLOX exported with decode_in_inference=False, one output (B, anchors, 5 + nc) of raw grids:
#               dx, dy, log w, log h (grid units), sigmoid objectness, sigmoid class scores; anchors are the
#               stride-8, 16 and 32 grid cells, row-major. Decoded on the host (edgecv.vision.decode.yolox_to_yolov8).
OUTPUT_FORMATS = ("yolov8", "yolov5", "seg_logits", "nms", "yolov8_seg", "tv_detect", "yolox")
PAD_ALIGNS = ("center", "top-left")  # where the letterboxed image sits in the padded input (YOLOX: top-left)
# Mask prototypes of a yolov8_seg model (and coefficients per anchor).
SEG_PROTOS = 32


@dataclass(frozen=True)
class ModelMeta:
    """What a model needs around it: task, classes, preprocessing, output layout.

    ``input_size`` is (height, width) the model was exported at. With ``dynamic``
    true the graph also accepts other sizes that are multiples of ``stride``.
    ``mean``/``std`` apply to pixels scaled to [0, 1] in ``color`` order.
    """

    task: str
    names: tuple[str, ...]
    input_size: tuple[int, int]
    output_format: str
    dynamic: bool = False
    stride: int = 32
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 114
    pad_align: str = "center"
    preprocess_in_graph: bool = False
    nms_in_graph: bool = False
    precision: str = "fp32"
    arch: str = ""
    source_hash: str = ""
    edgecv_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}", hint=f"use one of {', '.join(TASKS)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ArtifactError(
                f"unknown output format {self.output_format!r}",
                hint=f"this edgecv decodes {', '.join(OUTPUT_FORMATS)}; upgrade edgecv or re-export the model",
            )
        h, w = self.input_size
        if h <= 0 or w <= 0:
            raise ArtifactError(f"input_size must be positive, got {self.input_size}")
        if self.pad_align not in PAD_ALIGNS:
            raise ArtifactError(f"pad_align must be one of {PAD_ALIGNS}, got {self.pad_align!r}")
        if self.color not in ("RGB", "BGR"):
            raise ArtifactError(f"color must be RGB or BGR, got {self.color!r}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def replace(self, **changes: Any) -> ModelMeta:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("names", "input_size", "mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        kwargs["extra"] = dict(kwargs.get("extra") or {})
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ArtifactError(f"incomplete edgecv metadata: {exc}", hint="re-export the model with `edgecv export`") from exc

    # ONNX metadata_props <-> ModelMeta
    def to_props(self) -> dict[str, str]:
        return {META_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMeta | None:
        """ModelMeta from ONNX metadata_props, or None when the file has no edgecv metadata."""
        ours = {k[len(META_PREFIX) :]: v for k, v in props.items() if k.startswith(META_PREFIX)}
        if not ours:
            return None
        try:
            data = {k: json.loads(v) for k, v in ours.items()}
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"corrupt edgecv metadata: {exc}", hint="re-export the model with `edgecv export`") from exc
        return cls.from_dict(data)


def infer_meta(
    input_shape: Sequence[int | str | None],
    output_shapes: Sequence[Sequence[int | str | None]],
    *,
    task: str | None = None,
    names: Sequence[str] | None = None,
    foreign_props: dict[str, str] | None = None,
) -> ModelMeta:
    """Guess the metadata of an ONNX model edgecv did not write, from its I/O shapes.

    Recognises a YOLOv8-layout detector (one output ``(B, 4 + nc, A)`` with A > 4 + nc),
    a YOLOv5-layout detector (``(B, A, 5 + nc)``, with objectness), a YOLOv8/11-seg
    instance segmenter (two outputs, in either order: ``(B, 4 + nc + 32, A)`` and mask
    prototypes ``(B, 32, h, w)``; task "detect", format "yolov8_seg") and a semantic
    segmenter (one output ``(B, nc, H, W)``). Ultralytics' own
    metadata (``names``, ``stride``, ``imgsz``) is used when present.

    Raises:
        ArtifactError: the layout is not recognised.
    """
    props = foreign_props or {}
    if len(input_shape) != 4:
        raise ArtifactError(
            f"cannot use a model whose input has shape {list(input_shape)}",
            hint="edgecv expects one image input (N, 3, H, W)",
        )
    h, w = input_shape[2], input_shape[3]
    dynamic = not (isinstance(h, int) and isinstance(w, int))
    size = (h if isinstance(h, int) else 640, w if isinstance(w, int) else 640)
    if dynamic and "imgsz" in props:  # the size Ultralytics exported at
        try:
            imgsz = json.loads(props["imgsz"])
            size = (int(imgsz[0]), int(imgsz[1]))
        except (ValueError, TypeError, IndexError):
            pass
    stride = 32
    if "stride" in props and props["stride"].isdigit():
        stride = int(props["stride"])
    if names is None and "names" in props:
        names = _parse_ultralytics_names(props["names"])

    if len(output_shapes) == 2 and sorted(len(s) for s in output_shapes) == [3, 4]:
        det, protos = sorted(output_shapes, key=len)
        channels = det[1]
        if isinstance(channels, int) and channels > 4 + SEG_PROTOS and protos[1] == SEG_PROTOS:
            if task not in (None, "detect"):
                raise ConfigError(
                    f"--task {task} does not match an instance-segmentation detector "
                    f"with outputs {[list(s) for s in output_shapes]}",
                    hint="YOLOv8/11-seg models run as task detect (boxes with masks); leave out --task",
                )
            names = _names_for(names, channels - 4 - SEG_PROTOS)
            return ModelMeta("detect", names, size, "yolov8_seg", dynamic=dynamic, stride=stride, arch="foreign")
    if len(output_shapes) == 1 and len(output_shapes[0]) == 3:
        channels, anchors = output_shapes[0][1], output_shapes[0][2]
        if isinstance(channels, int) and channels > 4 and (not isinstance(anchors, int) or anchors > channels):
            if task not in (None, "detect"):
                raise ConfigError(f"--task {task} does not match a detector output {list(output_shapes[0])}")
            nc = channels - 4
            names = _names_for(names, nc)
            return ModelMeta("detect", names, size, "yolov8", dynamic=dynamic, stride=stride, arch="foreign")
        if isinstance(anchors, int) and anchors > 5 and (not isinstance(channels, int) or channels > anchors):
            if task not in (None, "detect"):
                raise ConfigError(f"--task {task} does not match a detector output {list(output_shapes[0])}")
            names = _names_for(names, anchors - 5)
            return ModelMeta("detect", names, size, "yolov5", dynamic=dynamic, stride=stride, arch="foreign")
    if len(output_shapes) == 1 and len(output_shapes[0]) == 4:
        nc = output_shapes[0][1]
        if isinstance(nc, int) and nc >= 2:
            if task not in (None, "segment"):
                raise ConfigError(f"--task {task} does not match a segmenter output {list(output_shapes[0])}")
            names = _names_for(names, nc)
            return ModelMeta("segment", names, size, "seg_logits", dynamic=dynamic, stride=stride, arch="foreign")
    raise ArtifactError(
        f"this ONNX has no edgecv metadata and its outputs {[list(s) for s in output_shapes]} are not a layout edgecv knows",
        hint=(
            "export it with `edgecv export`, or use a YOLOv8-layout detector (B, 4+nc, anchors), a YOLOv8-seg model "
            "((B, 4+nc+32, anchors) and (B, 32, h, w)) or a segmenter (B, nc, H, W)"
        ),
    )


def _names_for(names: Sequence[str] | None, nc: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"class{i}" for i in range(nc))
    if len(names) != nc:
        raise ConfigError(f"{len(names)} class names given but the model has {nc} classes", hint="pass a names file with one name per class")
    return tuple(names)


def _parse_ultralytics_names(text: str) -> tuple[str, ...] | None:
    """Ultralytics writes ``names`` as a Python dict repr: ``{0: 'person', 1: 'bicycle'}``."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return tuple(str(value[k]) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return None


def read_names_file(path: Path) -> tuple[str, ...]:
    """One class name per line (blank lines ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read names file {path}: {exc.strerror}", hint="pass a text file with one class name per line") from exc
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise ConfigError(f"names file {path} is empty", hint="write one class name per line")
    return names


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


class atomic_output:  # noqa: N801 - used like a function: `with atomic_output(path) as tmp:`
    """Context manager giving a temp path beside ``path``; renamed over ``path`` on success.

    On an exception the temp file is removed and ``path`` is left as it was, so a
    crash or a full disk never leaves a half-written model behind.
    """

    def __init__(self, path: Path, suffix: str = "") -> None:
        self.path = Path(path)
        self.suffix = suffix or self.path.suffix
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise ConfigError(f"output folder {parent} does not exist", hint=f"create it: mkdir -p {parent}")
        try:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".tmp{self.suffix}", dir=parent)
        except OSError as exc:
            raise ConfigError(f"cannot write to {parent}: {exc.strerror}", hint="choose a writable output path") from exc
        os.close(fd)
        # mkstemp makes the file private (0600); give the result the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.tmp is not None
        if exc_type is None:
            try:
                os.replace(self.tmp, self.path)
                return
            except OSError as err:
                self.tmp.unlink(missing_ok=True)
                raise ConfigError(f"cannot write {self.path}: {err.strerror}", hint="choose a writable output path") from err
        self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            raise ConfigError(f"cannot write {self.path}: {exc.strerror}", hint="free disk space or choose another output path") from exc


def sidecar_path(engine_path: Path) -> Path:
    """The manifest JSON that sits next to a TensorRT plan: ``model.engine`` -> ``model.engine.json``."""
    return Path(engine_path).with_name(Path(engine_path).name + ".json")


def write_sidecar(engine_path: Path, meta: ModelMeta, **engine_info: Any) -> Path:
    data = {"edgecv": meta.to_dict(), "engine": engine_info}
    return atomic_write_bytes(sidecar_path(engine_path), json.dumps(data, indent=2).encode())


def read_sidecar(engine_path: Path) -> tuple[ModelMeta, dict[str, Any]]:
    path = sidecar_path(engine_path)
    if not path.exists():
        raise ArtifactError(
            f"{engine_path} has no manifest ({path.name} is missing)",
            hint="rebuild it with `edgecv build-engine MODEL.onnx`, which writes the manifest next to the engine",
        )
    try:
        data = json.loads(path.read_text())
        return ModelMeta.from_dict(data["edgecv"]), dict(data.get("engine", {}))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"corrupt engine manifest {path}: {exc}", hint="rebuild the engine with `edgecv build-engine`") from exc
