"""Names of the built-in architectures and what each one needs to be rebuilt from a state dict."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgecv.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    """A built-in architecture and the export defaults it needs.

    ``builder`` is "module:function", called as ``function(*builder_args, num_classes, width=...)``.
    ``mean``/``std`` are the host normalization written to the metadata. ``exporter`` is
    the torch.onnx exporter to use unless the user picks one; ``dynamic`` is False for
    models that only export at a fixed input size.
    """

    name: str
    task: str
    output_format: str
    builder: str
    input_size: tuple[int, int]
    stride: int
    description: str
    builder_args: tuple[str, ...] = ()
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exporter: str = "dynamo"
    dynamic: bool = True

    def build(self, num_classes: int, **kwargs: Any) -> Any:
        import importlib

        module, func = self.builder.split(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
        return fn(*self.builder_args, num_classes, **kwargs)


def _tv(name: str, task: str, size: int, description: str) -> Architecture:
    """A torchvision model (edgecv.zoo.tv): TorchScript exporter (dynamo fails on the detectors)."""
    if task == "detect":  # normalizes and resizes inside the graph; NMS in the graph; fixed input size
        return Architecture(
            name, task, "tv_detect", "edgecv.zoo.tv:build", (size, size), 32, description,
            builder_args=(name,), exporter="torchscript", dynamic=False,
        )
    return Architecture(
        name, task, "seg_logits", "edgecv.zoo.tv:build", (size, size), 32, description,
        builder_args=(name,), mean=IMAGENET_MEAN, std=IMAGENET_STD, exporter="torchscript",
    )


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "shapes-det", "detect", "yolov8", "edgecv.zoo.shapes_det:build", (256, 256), 32,
            "anchor-free detector, YOLOv8 output layout, strides 8/16/32",
        ),
        Architecture(
            "shapes-seg", "segment", "seg_logits", "edgecv.zoo.shapes_seg:build", (256, 256), 32,
            "U-Net-like semantic segmenter on the shapes-det body, logits at input resolution",
        ),
        # torchvision (pip install 'edgecv[torchvision]'); num_classes counts real classes, without background
        _tv("ssdlite320_mobilenet_v3_large", "detect", 320, "torchvision SSDLite 320, MobileNetV3-Large; NMS in graph"),
        _tv("retinanet_resnet50_fpn_v2", "detect", 512, "torchvision RetinaNet v2, ResNet-50 FPN; NMS in graph"),
        _tv("fcos_resnet50_fpn", "detect", 512, "torchvision FCOS, ResNet-50 FPN; NMS in graph"),
        _tv("fasterrcnn_mobilenet_v3_large_320_fpn", "detect", 320, "torchvision Faster R-CNN 320, MobileNetV3-Large FPN; NMS in graph"),
        _tv("maskrcnn_resnet50_fpn", "detect", 512, "torchvision Mask R-CNN, ResNet-50 FPN; NMS and instance masks in graph"),
        _tv("deeplabv3_mobilenet_v3_large", "segment", 512, "torchvision DeepLabV3, MobileNetV3-Large; logits at input size"),
        _tv("lraspp_mobilenet_v3_large", "segment", 512, "torchvision LR-ASPP, MobileNetV3-Large; logits at input size"),
        _tv("fcn_resnet50", "segment", 512, "torchvision FCN, ResNet-50; logits at input size"),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known architectures: {', '.join(ARCHITECTURES)}"
        raise ConfigError(f"unknown architecture {name!r}", hint=hint) from None
