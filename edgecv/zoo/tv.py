"""torchvision detectors and segmenters, wrapped so their outputs export to ONNX as fixed tensors.

torchvision's models take a list of images and return a list of dicts; the wrappers
here take one (B, 3, H, W) float tensor and return plain tensors:

- detection (``tv_detect``): ``(boxes (N, 4) float32 xyxy in input pixels, scores (N,)
  float32, labels (N,) int64)`` for the first image of the batch. The model keeps its own
  preprocessing (``GeneralizedRCNNTransform``: ImageNet normalization and an internal
  resize), decoding and NMS inside the graph; the input is RGB scaled to [0, 1].
  torchvision reserves label 0 for the background, so a model for ``num_classes`` real
  classes is built with ``num_classes + 1`` outputs, and label ``k`` is class id ``k - 1``.
- segmentation (``seg_logits``): ``model(x)["out"]``, (B, C, H, W) logits at the input
  size; the input is normalized with the ImageNet mean/std (host preprocessing).

A state dict saved from the plain torchvision model (``torch.save(model.state_dict())``)
loads into the wrapper as is: the wrapper's ``state_dict``/``load_state_dict`` are the
inner model's, without a prefix. torch and torchvision are imported only when a model
is built.
"""

from __future__ import annotations

from typing import Any

from edgecv._optional import require

DETECTION = (
    "ssdlite320_mobilenet_v3_large",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn",
)
SEGMENTATION = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50")
# detectors with instance masks: a 4th output, masks (N, 1, H, W) probabilities at the input size
WITH_MASKS = ("maskrcnn_resnet50_fpn",)
# labels the detectors reserve for the background (label 0): class id = label - BACKGROUND_LABELS
BACKGROUND_LABELS = 1


def build(name: str, num_classes: int, width: float = 1.0) -> Any:
    """Build torchvision model ``name`` with random weights (nothing is downloaded), wrapped for export.

    Args:
        name: a torchvision detection or segmentation builder, e.g. ``"fcos_resnet50_fpn"``.
        num_classes: real classes, without the background.
        width: ignored (torchvision models have fixed widths); accepted for the registry's signature.
    """
    del width
    torch = require("torch")
    tv = require("torchvision", extra="torchvision")
    if name in DETECTION:
        builder = getattr(tv.models.detection, name)
        inner = builder(weights=None, weights_backbone=None, num_classes=num_classes + BACKGROUND_LABELS)
        return _wrapper(torch, detection=True)(inner).eval()
    if name in SEGMENTATION:
        builder = getattr(tv.models.segmentation, name)
        inner = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=None)
        return _wrapper(torch, detection=False)(inner).eval()
    raise ValueError(f"unknown torchvision model {name!r}")  # the registry only names the ones above


def _wrapper(torch: Any, *, detection: bool) -> type:
    nn = torch.nn

    class _TorchvisionModel(nn.Module):
        """Holds the torchvision model; state dicts are the inner model's (no ``model.`` prefix)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return self.model.state_dict(*args, **kwargs)

        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
            return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    class TorchvisionDetector(_TorchvisionModel):
        def forward(self, x: Any) -> tuple[Any, ...]:
            """(B, 3, H, W) float RGB in [0, 1] -> boxes (N, 4) xyxy input pixels, scores (N,), labels (N,) int64
            (+ masks (N, 1, H, W) probabilities for Mask R-CNN)."""
            out = self.model([x[0]])
            if isinstance(out, tuple):  # scripting/tracing mode returns (losses, detections)
                out = out[1]
            det = out[0]
            if "masks" in det:
                return det["boxes"], det["scores"], det["labels"], det["masks"]
            return det["boxes"], det["scores"], det["labels"]

    class TorchvisionSegmenter(_TorchvisionModel):
        def forward(self, x: Any) -> Any:
            """(B, 3, H, W) normalized RGB -> (B, C, H, W) logits."""
            return self.model(x)["out"]

    return TorchvisionDetector if detection else TorchvisionSegmenter
