"""Names of the built-in architectures and what each one needs to be rebuilt from a state dict."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgecv.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    name: str
    task: str
    output_format: str
    builder: str  # "module:function" building the nn.Module from (num_classes, width)
    input_size: tuple[int, int]
    stride: int
    description: str

    def build(self, num_classes: int, **kwargs: Any) -> Any:
        import importlib

        module, func = self.builder.split(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
        return fn(num_classes, **kwargs)


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
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known architectures: {', '.join(ARCHITECTURES)}"
        raise ConfigError(f"unknown architecture {name!r}", hint=hint) from None
