"""A DeepStream ``nvinfer`` config (``[property]`` key file) from an edgecv artifact.

    artifact                              nvinfer key
    .onnx / .engine                       onnx-file / model-engine-file
    precision fp32 / int8 / fp16          network-mode 0 / 1 / 2
    batch range OPT (or the fixed batch)  batch-size (set it to the number of streams: --batch-size)
    class names                           num-detected-classes, labelfile-path (labels.txt)
    task detect / segment                 network-type 0 / 2
    mean, std (pixels scaled to [0, 1])   net-scale-factor = 1 / (255 std), offsets = 255 mean
    color RGB / BGR                       model-color-format 0 / 1
    letterbox, pad_align center/top-left  maintain-aspect-ratio 1, symmetric-padding 1 / 0
    input_size                            infer-dims 3;H;W
    NMS in the graph                      cluster-mode 4 (none), else 2 (NMS) with the run's IoU
    MODEL.calib next to the model         int8-calib-file (TensorRT 10 implicit INT8 from an FP32 graph)

Which outputs nvinfer parses without a custom library (``parse-bbox-func-name`` +
``custom-lib-path``), per NVIDIA's nvinfer documentation: a semantic segmenter's ``(C, H, W)``
class map (network-type 2, edgecv's ``seg_logits``) and classifiers. Every detector layout edgecv
writes needs a bounding-box parse function from a library: ``nms`` (the EfficientNMS layout, in this
order: num_dets int32, boxes float32 xyxy in network-input pixels, scores float32, classes int32) is
exactly what ``NvDsInferParseCustomEfficientNMSTLT`` reads; that function is NVIDIA's, in the
``post_processor`` of NVIDIA's deepstream_tao_apps, built once into ``libnvds_infercustomparser_tao.so``
(not part of the DeepStream install), so the config names it and ``custom_lib`` gives the built
library's path. The raw layouts (yolov8, yolov5, yolox, yolov8_seg) need a YOLO parser library
(e.g. the community DeepStream-Yolo project). edgecv writes the keys and says which parser is
needed; it does not ship a parser library.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgecv.artifact import atomic_write_bytes
from edgecv.deploy.spec import ArtifactSpec, read_artifact
from edgecv.errors import ConfigError

log = logging.getLogger(__name__)

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
# NVIDIA's parser (deepstream_tao_apps/post_processor) for the EfficientNMS layout of edgecv's in-graph NMS
NMS_PARSER_LIB = "libnvds_infercustomparser_tao.so"
NMS_PARSER = "NvDsInferParseCustomEfficientNMSTLT"
# output layouts nvinfer parses with no parse-bbox function at all
BUILTIN_LAYOUTS = {"seg_logits": "semantic segmentation (network-type 2): nvinfer's own parser takes the (C, H, W) class scores"}


@dataclass(frozen=True)
class DeepStreamConfig:
    """Options of ``edgecv deploy deepstream``.

    Attributes:
        batch_size: nvinfer's batch, normally the number of streams (default: the artifact's OPT batch, or its fixed batch).
        gpu_id: the GPU nvinfer runs on.
        conf, iou, max_det: ``pre-cluster-threshold``, ``nms-iou-threshold``, ``topk``.
        custom_lib, parse_func: a bbox parser library and function for raw YOLO layouts.
        interval: frames skipped between inferences (0: every frame).
        int8: build an FP32 ONNX as implicit INT8 from the calibration cache next to it (TensorRT 10 only).
    """

    batch_size: int | None = None
    gpu_id: int = 0
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300
    custom_lib: str | None = None
    parse_func: str | None = None
    interval: int = 0
    int8: bool = False  # an FP32 ONNX as implicit INT8 with the calibration cache next to it (TensorRT 10)

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 0 <= self.conf <= 1 or not 0 <= self.iou <= 1 or self.max_det < 1:
            raise ConfigError(f"conf and iou must be in [0, 1] and max_det >= 1, got {self.conf}, {self.iou}, {self.max_det}")
        if (self.custom_lib is None) != (self.parse_func is None):
            raise ConfigError("--custom-lib and --parse-func go together", hint="pass the parser library and its function name")
        if self.interval < 0 or self.gpu_id < 0:
            raise ConfigError("--interval and --gpu-id must be >= 0")


@dataclass(frozen=True)
class DeepStreamResult:
    config: Path
    labels: Path
    notes: tuple[str, ...]


def nvinfer_properties(spec: ArtifactSpec, cfg: DeepStreamConfig, model_ref: str, labels_ref: str) -> tuple[dict[str, str], list[str]]:
    """The ``[property]`` keys for ``spec`` and notes for the user (what nvinfer needs beyond them)."""
    meta = spec.meta
    notes: list[str] = []
    if meta.preprocess_in_graph:
        raise ConfigError(
            f"{spec.path.name} takes uint8 NHWC input (preprocessing in the graph); nvinfer feeds a normalized float NCHW tensor",
            hint="deploy the model exported without --preprocess-in-graph: nvinfer does the scaling itself (net-scale-factor, offsets)",
        )
    if len(set(meta.std)) != 1:
        raise ConfigError(
            f"{spec.path.name} normalizes with per-channel std {list(meta.std)}; nvinfer has one net-scale-factor for all channels",
            hint="move the normalization into the graph (edgecv export --preprocess-in-graph is not it: it also changes the input to uint8); "
            "or export with equal std",
        )
    if meta.layout != "NCHW":
        raise ConfigError(f"{spec.path.name} has layout {meta.layout}; nvinfer feeds NCHW", hint="export with the default NCHW layout")
    precision = meta.precision if meta.precision in NETWORK_MODE else "fp32"
    fixed = spec.fixed_batch
    batch = cfg.batch_size or (fixed if fixed is not None else spec.batch[1] if spec.batch else 1)
    if fixed is not None and batch != fixed:
        raise ConfigError(f"{spec.path.name} has a fixed batch of {fixed}; --batch-size {batch} cannot apply", hint="export with --dynamic-batch")
    if spec.batch is not None and not spec.batch[0] <= batch <= spec.batch[2]:
        raise ConfigError(f"--batch-size {batch} is outside {spec.path.name}'s batch range {':'.join(map(str, spec.batch))}")
    h, w = meta.input_size
    scale = 1.0 / (255.0 * meta.std[0])
    props: dict[str, str] = {"gpu-id": str(cfg.gpu_id)}
    props["onnx-file" if spec.kind == "onnx" else "model-engine-file"] = model_ref
    if spec.kind == "onnx":
        # nvinfer builds (and caches) an engine from the ONNX on first start; it writes it next to the ONNX
        notes.append("nvinfer builds a TensorRT engine from the ONNX on its first start (minutes on a Jetson); set model-engine-file to reuse it")
    props |= {
        "labelfile-path": labels_ref,
        "batch-size": str(batch),
        "network-type": "0" if meta.task == "detect" else "2",
        "num-detected-classes": str(meta.num_classes),
        "infer-dims": f"3;{h};{w}",
        "net-scale-factor": repr(scale),
        "offsets": ";".join(repr(round(255.0 * m, 6)) for m in meta.mean),
        "model-color-format": "0" if meta.color == "RGB" else "1",
        "maintain-aspect-ratio": "1",
        "symmetric-padding": "1" if meta.pad_align == "center" else "0",
        "interval": str(cfg.interval),
        "gie-unique-id": "1",
        "output-blob-names": ";".join(o.name for o in spec.outputs),
    }
    if cfg.int8 and precision != "int8":
        if spec.kind != "onnx" or spec.calib_cache is None:
            raise ConfigError(
                f"--int8 builds {spec.path.name} as implicit INT8 from a calibration cache, and none was found next to it",
                hint="edgecv calibrate MODEL.onnx IMAGES writes MODEL.calib (and MODEL.int8.onnx, which needs no cache)",
            )
        precision = "int8"
        props_mode = NETWORK_MODE["int8"]
        notes.append("implicit INT8 from the calibration cache: TensorRT 10 only (TensorRT 11 takes INT8 from Q/DQ graphs)")
    else:
        props_mode = NETWORK_MODE[precision]
    props["network-mode"] = str(props_mode)
    if precision == "int8" and spec.calib_cache is not None:
        props["int8-calib-file"] = spec.calib_cache.name
    elif spec.calib_cache is not None:
        notes.append(f"{spec.calib_cache.name} is next to the model: --int8 uses it for TensorRT 10 implicit INT8")
    if meta.task == "detect":
        props["cluster-mode"] = "4" if meta.nms_in_graph or meta.output_format in ("nms", "tv_detect") else "2"
        if cfg.custom_lib:
            props["parse-bbox-func-name"] = str(cfg.parse_func)
            props["custom-lib-path"] = str(cfg.custom_lib)
        elif meta.output_format == "nms":
            props["parse-bbox-func-name"] = NMS_PARSER
            props["custom-lib-path"] = NMS_PARSER_LIB
            notes.append(
                f"in-graph NMS outputs are read by {NMS_PARSER}: build {NMS_PARSER_LIB} from NVIDIA's deepstream_tao_apps "
                "(post_processor) and pass its path with --custom-lib (or edit custom-lib-path)"
            )
        else:
            notes.append(
                f"nvinfer has no built-in parser for the {meta.output_format} layout: build a YOLO bbox parser library "
                "(e.g. DeepStream-Yolo) and pass --custom-lib LIB.so --parse-func NAME, or convert with in-graph NMS "
                f"(edgecv convert --nms onnx), whose outputs NVIDIA's {NMS_PARSER} reads"
            )
    else:
        props["segmentation-threshold"] = "0.0"  # take the arg-max class at every pixel
        if meta.output_format in BUILTIN_LAYOUTS:
            notes.append(BUILTIN_LAYOUTS[meta.output_format])
    if "int8-calib-file" not in props and precision == "int8":
        notes.append("INT8 comes from the graph's Q/DQ nodes (no calibration cache needed)")
    return props, notes


def class_attrs(meta_task: str, cfg: DeepStreamConfig) -> dict[str, str]:
    if meta_task != "detect":
        return {}
    return {"pre-cluster-threshold": repr(cfg.conf), "nms-iou-threshold": repr(cfg.iou), "topk": str(cfg.max_det)}


def render(props: dict[str, str], attrs: dict[str, str], source: str) -> str:
    lines = [f"# nvinfer config for {source}, written by `edgecv deploy deepstream` from the model's metadata", "[property]"]
    lines += [f"{k}={v}" for k, v in props.items()]
    if attrs:
        lines += ["", "[class-attrs-all]", *(f"{k}={v}" for k, v in attrs.items())]
    return "\n".join(lines) + "\n"


def write_deepstream(model: Path, out: Path | None, cfg: DeepStreamConfig, *, onnx: Path | None = None) -> DeepStreamResult:
    """Write ``out`` (default ``MODEL_nvinfer.txt`` next to the model) and ``labels.txt`` beside it.

    Model, labels and calibration-cache paths in the config are relative to the config file's folder
    (nvinfer resolves them so); the model is referenced where it is, not copied.
    """
    spec = read_artifact(model, onnx=onnx)
    out = Path(out) if out is not None else spec.path.with_name(spec.path.stem + "_nvinfer.txt")
    if out.suffix == "" or out.is_dir():
        raise ConfigError(f"--output {out} must be a file path (e.g. config_infer.txt)")
    base = out.parent.resolve()
    labels = out.with_name(f"{out.stem}_labels.txt")
    props, notes = nvinfer_properties(spec, cfg, _relative(spec.path, base), labels.name)
    if "int8-calib-file" in props and spec.calib_cache is not None:
        props["int8-calib-file"] = _relative(spec.calib_cache, base)
    atomic_write_bytes(labels, ("\n".join(spec.meta.names) + "\n").encode())
    atomic_write_bytes(out, render(props, class_attrs(spec.meta.task, cfg), spec.path.name).encode())
    log.info("wrote %s", out)
    return DeepStreamResult(out, labels, tuple(notes))


def _relative(path: Path, base: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), base)
