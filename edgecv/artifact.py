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
import errno
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv import __version__
from edgecv.errors import ArtifactError, ConfigError, OutputError

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
#   seg_binary: one output (B, 1, H, W): a foreground probability (extra["binary_map"] == "prob") or logit map
#               ("logit"), at the input size or a fixed fraction; task "segment", names (background, foreground)
OUTPUT_FORMATS = ("yolov8", "yolov5", "seg_logits", "nms", "yolov8_seg", "tv_detect", "yolox", "seg_binary")
PAD_ALIGNS = ("center", "top-left")  # where the letterboxed image sits in the padded input (YOLOX: top-left)
# How the resized size is rounded: "round" (Ultralytics, edgecv) or "floor" (YOLOX's own int() truncation).
RESIZE_ROUNDINGS = ("round", "floor")
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
    # pad every frame to the full input_size even when the graph is dynamic (a static TensorRT profile)
    square: bool = False
    resize_rounding: str = "round"
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
        if self.resize_rounding not in RESIZE_ROUNDINGS:
            raise ArtifactError(f"resize_rounding must be one of {RESIZE_ROUNDINGS}, got {self.resize_rounding!r}")
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


def with_input_size(meta: ModelMeta, imgsz: Sequence[int] | None, *, square: bool = False, model: str = "the model") -> ModelMeta:
    """``meta`` running at ``imgsz`` (h, w), padded to the full size when ``square``.

    A dynamic graph takes any size that is a multiple of its stride; a static graph
    only its own size.

    Raises:
        ConfigError: the size is not positive, not a multiple of the stride, or differs
            from a static model's fixed size.
    """
    if imgsz is None:
        return meta.replace(square=True) if square and not meta.square else meta
    h, w = (int(v) for v in imgsz)
    if h <= 0 or w <= 0:
        raise ConfigError(f"image size must be positive, got {h},{w}", hint="e.g. --imgsz 640 or --imgsz 480,640")
    if (h, w) != tuple(meta.input_size):
        if not meta.dynamic:
            fixed = f"{meta.input_size[0]},{meta.input_size[1]}"
            raise ConfigError(
                f"{model} has a fixed input size {fixed}; it cannot run at {h},{w}",
                hint=f"leave out --imgsz (or pass --imgsz {fixed}), or re-export the model with dynamic height and width",
            )
        s = meta.stride
        if h % s or w % s:
            up = f"{-(-h // s) * s},{-(-w // s) * s}"
            raise ConfigError(f"image size {h},{w} is not a multiple of the model's stride {s}", hint=f"use --imgsz {up}")
    if (h, w) != tuple(meta.input_size):
        log.info("%s runs at %d,%d (exported at %d,%d)", model, h, w, *meta.input_size)
    return meta.replace(input_size=(h, w), square=square or meta.square)


# Strides of the detection heads edgecv recognises: P3-P5 (YOLOv5/8/11, YOLOX) and P3-P6 (the "6" models).
HEAD_STRIDES = ((8, 16, 32), (8, 16, 32, 64))
# Foreign layouts a user may name (``--layout``) when shapes alone cannot tell them apart.
FOREIGN_LAYOUTS = ("yolov8", "yolov5", "yolox", "yolov8_seg", "seg_logits", "seg_binary")
# Ultralytics tasks whose outputs look like a detector's but are something else.
_ULTRALYTICS_UNSUPPORTED = {"pose": "keypoints", "obb": "oriented boxes", "classify": "image classes"}

Dim = int | str | None


def grid_cells(size: tuple[int, int], strides: Sequence[int]) -> int:
    """Anchor points of a one-anchor-per-cell head (YOLOv8/11, YOLOX) on an (h, w) input."""
    h, w = size
    return sum(-(-h // s) * -(-w // s) for s in strides)


def infer_meta(
    input_shape: Sequence[Dim],
    output_shapes: Sequence[Sequence[Dim]],
    *,
    task: str | None = None,
    names: Sequence[str] | None = None,
    foreign_props: dict[str, str] | None = None,
    layout: str | None = None,
    output_ops: Sequence[str | None] | None = None,
) -> ModelMeta:
    """Recognise the layout of an ONNX model edgecv did not write, from its I/O shapes and input size.

    Never guesses: a shape that fits no layout, or fits several, raises with what was seen.
    ``meta.extra["layout_reason"]`` says how the layout was decided (shown by ``edgecv info``).

    - YOLOv8/11 detector: one output ``(B, 4 + nc, A)`` with ``A`` the grid cells of the
      input at strides 8/16/32 (or 8..64); dynamic ``A`` is accepted (channels first).
    - YOLOv5: one output ``(B, 3 x cells, 5 + nc)`` (three anchors per cell, with objectness).
    - YOLOX raw grids: one output ``(B, cells, 5 + nc)``; YOLOX's preprocessing (BGR, 0-255,
      top-left padding, truncated resize). A dynamic anchor count cannot tell YOLOv5 from
      YOLOX: that needs ``layout`` (or Ultralytics' metadata, which means YOLOv5).
    - YOLOv8/11-seg: two outputs ``(B, 4 + nc + 32, A)`` and prototypes ``(B, 32, h, w)``.
    - Semantic segmenter: one output ``(B, C, H, W)`` at 1, 1/2, 1/4 or 1/8 of the input;
      ``C == 1`` is a probability or logit map (``seg_binary``; which of the two is read
      from ``output_ops``: a final Sigmoid means probabilities). An output with the input's
      own shape (3 channels, same size) could be an image: that needs ``task="segment"``.

    Args:
        input_shape: the image input's dims (int, or a str/None for a dynamic one).
        output_shapes: every output's dims, same convention.
        task, names: what the user said (``--task``, ``--names``).
        foreign_props: the file's metadata_props (Ultralytics: names, stride, imgsz, task).
        layout: a layout from :data:`FOREIGN_LAYOUTS` the user named (``--layout``), or None/"auto".
        output_ops: the op type producing each output, when the graph could be read.

    Raises:
        ArtifactError: the input is not an image, or the outputs fit no layout or several.
        ConfigError: ``task``/``layout``/``names`` contradict the model.
    """
    props = foreign_props or {}
    if layout in (None, "auto"):
        layout = None
    elif layout not in FOREIGN_LAYOUTS:
        raise ConfigError(f"unknown --layout {layout!r}", hint=f"use one of auto, {', '.join(FOREIGN_LAYOUTS)}")
    seen = f"input {_dims(input_shape)}, outputs {', '.join(_dims(s) for s in output_shapes)}"
    if len(input_shape) != 4 or input_shape[1] not in (3, None) and not isinstance(input_shape[1], str):
        raise ArtifactError(
            f"cannot use a model whose input has shape {_dims(input_shape)}",
            hint="edgecv feeds one image input (N, 3, H, W)",
        )
    ul_task = props.get("task")
    if ul_task in _ULTRALYTICS_UNSUPPORTED:
        raise ArtifactError(
            f"this is an Ultralytics {ul_task} model ({_ULTRALYTICS_UNSUPPORTED[ul_task]}); edgecv runs detectors and segmenters",
            hint="export the detect or segment variant of the model",
        )
    h, w = input_shape[2], input_shape[3]
    dynamic = not (isinstance(h, int) and isinstance(w, int))
    size = (h if isinstance(h, int) else 640, w if isinstance(w, int) else 640)
    size_from = "the graph" if not dynamic else "a default (dynamic graph)"
    if dynamic and "imgsz" in props:  # the size Ultralytics exported at
        try:
            imgsz = json.loads(props["imgsz"])
            size = (int(imgsz[0]), int(imgsz[1]))
            size_from = "Ultralytics' imgsz"
        except (ValueError, TypeError, IndexError):
            pass
    stride = 32
    if "stride" in props and props["stride"].isdigit():
        stride = int(props["stride"])
    if names is None and "names" in props:
        names = _parse_ultralytics_names(props["names"])

    def make(fmt: str, nc: int, reason: str, **fields: Any) -> ModelMeta:
        want = "segment" if fmt in ("seg_logits", "seg_binary") else "detect"
        if task not in (None, want):
            raise ConfigError(
                f"--task {task} does not match this model's outputs ({seen}), which are a {_FORMAT_NAMES[fmt]}",
                hint=f"leave out --task (or pass --task {want})",
            )
        if layout is not None and layout != fmt:
            raise ConfigError(f"--layout {layout} does not fit this model ({seen})", hint=f"its outputs are a {_FORMAT_NAMES[fmt]}: leave out --layout")
        names_ = _names_for(names, nc) if fmt != "seg_binary" else _binary_names(names)
        extra = {"layout_reason": f"{reason}; input size {size[0]}x{size[1]} from {size_from}"}
        extra.update(fields.pop("extra", {}))
        return ModelMeta(want, names_, size, fmt, dynamic=dynamic, stride=stride, arch="foreign", extra=extra, **fields)

    # ---- instance segmentation: (B, 4 + nc + 32, A) and prototypes (B, 32, h, w)
    if len(output_shapes) == 2 and sorted(len(s) for s in output_shapes) == [3, 4]:
        det, protos = sorted(output_shapes, key=len)
        channels = det[1]
        if isinstance(channels, int) and channels > 4 + SEG_PROTOS and protos[1] == SEG_PROTOS:
            if task not in (None, "detect"):
                raise ConfigError(
                    f"--task {task} does not match an instance-segmentation detector with outputs {[_dims(s) for s in output_shapes]}",
                    hint="YOLOv8/11-seg models run as task detect (boxes with masks); leave out --task",
                )
            return make("yolov8_seg", channels - 4 - SEG_PROTOS, f"two outputs {_dims(det)} and prototypes {_dims(protos)}: YOLOv8/11-seg")
    if len(output_shapes) != 1:
        raise ArtifactError(
            f"no layout edgecv knows has {len(output_shapes)} outputs like these ({seen})",
            hint="edgecv recognises one detector or segmenter output, or YOLOv8-seg's two; export the model with `edgecv export`",
        )
    out = list(output_shapes[0])
    if len(out) == 3:
        return _detector_layout(out, size, not dynamic or size_from != "a default (dynamic graph)", props, layout, seen, make)
    if len(out) == 4:
        return _segmenter_layout(list(input_shape), out, size, dynamic, task, layout, seen, make, output_ops)
    raise ArtifactError(
        f"this ONNX has no edgecv metadata and its output is not a layout edgecv knows ({seen})",
        hint="edgecv recognises detector outputs (B, C, A) and segmenter outputs (B, C, H, W); export the model with `edgecv export`",
    )


_FORMAT_NAMES = {
    "yolov8": "YOLOv8/11 detector",
    "yolov5": "YOLOv5 detector",
    "yolox": "YOLOX detector",
    "yolov8_seg": "YOLOv8/11 instance segmenter",
    "seg_logits": "semantic segmenter",
    "seg_binary": "one-channel segmenter",
}
# YOLOX's own preprocessing: BGR, 0-255 (no normalization), padded right/bottom with 114, resized size truncated.
YOLOX_PREPROCESS: dict[str, Any] = {
    "color": "BGR", "mean": (0.0, 0.0, 0.0), "std": (1 / 255,) * 3, "pad_align": "top-left", "pad_value": 114, "resize_rounding": "floor",
}  # fmt: skip


def _dims(shape: Sequence[Dim]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + ")"


def _detector_layout(out: list[Dim], size: tuple[int, int], known_size: bool, props: dict[str, str], layout: str | None, seen: str, make: Any) -> ModelMeta:
    """One (B, d1, d2) output: YOLOv8/11, YOLOv5 or YOLOX, told apart by the anchor count at the input size.

    ``known_size``: ``size`` is the graph's own or the one Ultralytics recorded (not a default).
    """
    d1, d2 = out[1], out[2]
    h, w = size
    cells = {grid_cells(size, s): s for s in HEAD_STRIDES}
    strides = lambda c: "/".join(map(str, cells[c]))  # noqa: E731
    hint = "pass --layout yolov8, yolov5 or yolox (edgecv export MODEL.onnx --layout ...) if it is one of these, or export it with `edgecv export`"
    if layout is not None:  # the user named it: the anchor count must still fit where the size is known

        def fits(anchors: Dim, per_cell: int) -> bool:
            return not isinstance(anchors, int) or not known_size or anchors in {per_cell * c for c in cells}

        if layout == "yolov8" and isinstance(d1, int) and d1 > 4 and fits(d2, 1):
            return make("yolov8", d1 - 4, f"--layout yolov8 (given); output {_dims(out)}")
        if layout in ("yolov5", "yolox") and isinstance(d2, int) and d2 > 5 and fits(d1, 3 if layout == "yolov5" else 1):
            extra = YOLOX_PREPROCESS if layout == "yolox" else {}
            return make(layout, d2 - 5, f"--layout {layout} (given); output {_dims(out)}", **extra)
        raise ConfigError(f"--layout {layout} does not fit this model ({seen})", hint="leave out --layout to have it recognised")
    if isinstance(d1, int) and d1 > 4 and isinstance(d2, int) and known_size and d2 in cells:
        return make("yolov8", d1 - 4, f"one output {_dims(out)}: 4 + {d1 - 4} classes x {d2} anchors = the stride {strides(d2)} grid of {h}x{w}: YOLOv8/11")
    if isinstance(d1, int) and d1 > 4 and not isinstance(d2, int):
        return make("yolov8", d1 - 4, f"one output {_dims(out)}: 4 + {d1 - 4} classes x dynamic anchors (channels first): YOLOv8/11")
    if isinstance(d2, int) and d2 > 5:
        if isinstance(d1, int) and known_size:
            if d1 in cells:
                return make(
                    "yolox", d2 - 5, f"one output {_dims(out)}: {d1} anchors = one per cell of the stride {strides(d1)} grid of {h}x{w}: YOLOX raw grids",
                    **YOLOX_PREPROCESS,
                )
            if d1 % 3 == 0 and d1 // 3 in cells:
                return make("yolov5", d2 - 5, f"one output {_dims(out)}: {d1} anchors = three per cell of the stride {strides(d1 // 3)} grid of {h}x{w}: YOLOv5")
        elif not isinstance(d1, int) and ("stride" in props or "Ultralytics" in props.get("author", "")):
            return make("yolov5", d2 - 5, f"one output {_dims(out)} with Ultralytics metadata: YOLOv5 (anchors, 5 + nc)")
        elif not isinstance(d1, int) or not known_size:
            raise ArtifactError(
                f"the output {_dims(out)} could be YOLOv5 or YOLOX raw grids (anchors, 5 + {d2 - 5} classes) and the input size that would tell is not known ({seen})",
                hint="say which: edgecv export MODEL.onnx --layout yolox (or --layout yolov5)",
            )
    expected = ", ".join(f"{c} (strides {strides(c)})" for c in cells)
    raise ArtifactError(
        f"the output {_dims(out)} fits no detector layout for a {h}x{w} input ({seen}); grid cells there: {expected}, YOLOv5 has 3 per cell",
        hint=hint,
    )


def _segmenter_layout(
    inp: list[Dim], out: list[Dim], size: tuple[int, int], dynamic: bool, task: str | None, layout: str | None, seen: str, make: Any,
    output_ops: Sequence[str | None] | None,
) -> ModelMeta:
    """One (B, C, H, W) output: a semantic segmenter at a fixed fraction of the input, or a one-channel map."""
    c, oh, ow = out[1], out[2], out[3]
    if not isinstance(c, int) or c < 1:
        raise ArtifactError(f"the output {_dims(out)} has no fixed class count ({seen})", hint="export the model with a fixed number of output channels")
    asked = task == "segment" or layout in ("seg_logits", "seg_binary")
    if isinstance(oh, int) and isinstance(ow, int) and not dynamic:
        ratios = {size[0] / oh, size[1] / ow}
        if len(ratios) != 1 or ratios.pop() not in (1, 2, 4, 8):
            raise ArtifactError(
                f"the output {_dims(out)} is not at 1, 1/2, 1/4 or 1/8 of the {size[0]}x{size[1]} input ({seen})",
                hint="edgecv recognises segmenters whose output is the input size or a fixed fraction of it; export the model with `edgecv export`",
            )
        how = "the input size" if size[0] == oh else f"1/{size[0] // oh} of the input"
    elif oh == inp[2] and ow == inp[3] and oh is not None:  # the same symbolic dims as the input
        how = "the input's own (dynamic) size"
    elif asked:
        how = "a dynamic size (--task segment given)"
    else:
        raise ArtifactError(
            f"cannot tell whether the dynamic output {_dims(out)} is a segmentation map of the input ({seen})",
            hint="pass --task segment if it is (its map is resized to the image), or export the model with `edgecv export`",
        )
    if c == 3 and list(out[1:]) == list(inp[1:]) and not asked:
        raise ArtifactError(
            f"the output {_dims(out)} has the input's own shape: it may be an image, not 3 class maps ({seen})",
            hint="pass --task segment if it is a 3-class segmenter",
        )
    if c == 1:
        op = (output_ops or [None])[0]
        if op is None:
            raise ArtifactError(
                f"the one-channel output {_dims(out)} may hold probabilities or logits, and the graph could not be read to tell ({seen})",
                hint="adopt it once with `edgecv export MODEL.onnx` (needs the onnx package), which records which it is",
            )
        kind = "prob" if op == "Sigmoid" else "logit"
        return make(
            "seg_binary", 1, f"one output {_dims(out)} at {how}: one-channel {'probability' if kind == 'prob' else 'logit'} map (last op {op})",
            extra={"binary_map": kind},
        )
    return make("seg_logits", c, f"one output {_dims(out)} at {how}: {c}-class segmentation logits")


def _binary_names(names: Sequence[str] | None) -> tuple[str, ...]:
    """A one-channel map has two classes: background and the foreground (one name given, or two)."""
    if names is None:
        return ("background", "foreground")
    if len(names) == 1:
        return ("background", str(names[0]))
    if len(names) == 2:
        return tuple(names)
    raise ConfigError(f"{len(names)} class names given for a one-channel map", hint="pass one name (the foreground) or two (background first)")


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
    """Write ``data`` to a temp file beside ``path``, fsync it and rename it into place."""
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


# Temp files are ``.NAME.edgecv-tmp-PID-RANDOM.SUFFIX`` beside their target: hidden, recognisable, and
# removable by the next edgecv writing into the same folder once process PID is gone (a SIGKILL, a power cut).
TEMP_MARK = ".edgecv-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"(\d+)-")


def temp_prefix(path: Path) -> str:
    return f".{Path(path).name}{TEMP_MARK}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove temp files left in ``folder`` by edgecv processes that no longer run; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        try:
            size = entry.stat().st_size
            entry.unlink()
        except OSError:
            log.debug("could not remove stale temp file %s", entry, exc_info=True)
            continue
        log.warning("removed %s (%.1f MB), left by an edgecv run that was killed (pid %s)", entry, size / 1e6, match.group(1))
        removed.append(entry)
    return removed


def check_writable(path: Path, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists and accepts a new file.

    Creates and removes a probe file (``os.access`` says yes to root on a read-only mount), and
    removes stale temp files of killed runs from that folder.

    Raises:
        ConfigError: the folder is missing, read-only or not writable, or ``path`` is a folder.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {what} {path}: folder {parent} does not exist", hint=f"create it: mkdir -p {parent}")
    if path.is_dir():
        raise ConfigError(f"cannot write {what} {path}: it is a folder", hint="pass a file name, e.g. out/result.json")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot write {what} {path}: the file is read-only", hint="choose another path or make it writable")
    clean_stale_temps(parent)
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".probe", dir=parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror}", hint="choose a writable output path") from exc
    os.close(fd)
    os.unlink(name)
    return path


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(str(path), os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # some file systems cannot fsync a folder; a file that fails to sync was not written
    finally:
        os.close(fd)


class atomic_output:  # noqa: N801 - used like a function: `with atomic_output(path) as tmp:`
    """Context manager giving a temp path beside ``path``; on success it is fsynced and renamed over ``path``.

    On an exception the temp file is removed and ``path`` is left as it was, so a
    crash or a full disk never leaves a half-written model behind. Every check the
    new file must pass belongs inside the ``with`` block (an exception there keeps
    the old file). The rename is followed by an fsync of the folder, so after a
    power cut the target is the old file or the complete new one.

    Raises:
        ConfigError: the folder is missing or not writable (on enter, before any work).
        OutputError: writing, syncing or renaming failed (disk full, I/O error).
    """

    def __init__(self, path: Path, suffix: str = "") -> None:
        self.path = Path(path)
        self.suffix = suffix or self.path.suffix
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise ConfigError(f"output folder {parent} does not exist", hint=f"create it: mkdir -p {parent}")
        if self.path.is_dir():
            raise ConfigError(f"cannot write {self.path}: it is a folder", hint="pass a file name")
        clean_stale_temps(parent)
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.path), suffix=self.suffix, dir=parent)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputError(f"cannot write {self.path}: {exc.strerror}", hint="free disk space or choose another output path") from exc
            raise ConfigError(f"cannot write to {parent}: {exc.strerror}", hint="choose a writable output path") from exc
        os.close(fd)
        # mkstemp makes the file private (0600); give the result the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
        self.tmp = Path(name)
        return self.tmp

    def commit(self) -> None:
        """fsync the temp file, rename it over the target and fsync the folder."""
        assert self.tmp is not None
        try:
            if not self.tmp.exists() or self.tmp.stat().st_size == 0:
                raise OutputError(f"nothing was written to {self.path}", hint="free disk space or choose another output path")
            fsync_path(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as err:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {err.strerror}", hint="free disk space or choose another output path") from err
        except OutputError:
            self.discard()
            raise
        try:
            fsync_path(self.path.parent if str(self.path.parent) else Path("."), directory=True)
        except OSError as err:  # renamed, but the folder entry may not survive a power cut
            log.warning("could not sync folder of %s: %s", self.path, err.strerror)

    def discard(self) -> None:
        if self.tmp is not None:
            try:
                self.tmp.unlink(missing_ok=True)
            except OSError:
                log.debug("could not remove %s", self.tmp, exc_info=True)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.tmp is not None
        if exc_type is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            raise OutputError(f"cannot write {self.path}: {exc.strerror}", hint="free disk space or choose another output path") from exc


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
