"""Adopt an ONNX file exported elsewhere (Ultralytics YOLOv5/v8/11, segmenters): add edgecv metadata.

Needs ``onnx`` but not torch. The layout is recognised from the output shapes
(:func:`edgecv.artifact.infer_meta`), with Ultralytics' own metadata (names,
stride, imgsz) when present; the graph itself is left untouched. The adopted file
is then checked to give the same outputs as the original through the runtime's
preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv import __version__
from edgecv.artifact import FOREIGN_LAYOUTS, ModelMeta, atomic_output, file_sha256, with_input_size
from edgecv.errors import ExportError
from edgecv.graph.onnx_graph import load_onnx, save_onnx, set_metadata


@dataclass(frozen=True)
class AdoptReport:
    path: Path
    meta: ModelMeta
    recognised: str  # what the layout was recognised as, e.g. "YOLOv5 detector (objectness), 80 classes"
    max_abs_diff: float


_LAYOUTS = {
    "yolov8": "YOLOv8/11 detector (B, 4 + nc, anchors)",
    "yolov5": "YOLOv5 detector (B, anchors, 5 + nc) with objectness",
    "yolov8_seg": "YOLOv8/11 instance segmenter (boxes + 32 mask coefficients, prototypes)",
    "seg_logits": "semantic segmenter (B, nc, H, W) logits",
    "seg_binary": "one-channel segmenter (B, 1, H, W) probability or logit map",
    "yolox": "YOLOX detector, raw grids (B, anchors, 5 + nc) decoded on the host",
}
LAYOUTS = ("auto", *FOREIGN_LAYOUTS)


def adopt_onnx(
    source: Path,
    out: Path,
    *,
    names: Sequence[str] | None = None,
    task: str | None = None,
    images: int = 3,
    layout: str = "auto",
    imgsz: tuple[int, int] | None = None,
) -> AdoptReport:
    """Write ``out``: ``source`` plus edgecv metadata, checked to run identically on ``images`` synthetic frames.

    The layout is recognised from the shapes and the input size
    (:func:`edgecv.artifact.infer_meta`); ``layout`` names it where the shapes cannot
    tell (YOLOv5 vs YOLOX with a dynamic anchor count). A YOLOX model gets YOLOX's
    preprocessing: BGR, 0-255, no normalization, padded right and bottom with 114,
    resized size truncated. ``imgsz`` (h, w) becomes a dynamic model's default size.

    Raises:
        ArtifactError: not a loadable ONNX, or a layout edgecv does not know (or several fit).
        ConfigError: ``layout``/``task``/``imgsz`` do not fit the model.
        ExportError: the adopted file does not reproduce the original's outputs.
    """
    from edgecv.data.synthetic import make_scene
    from edgecv.engine.onnxruntime import OnnxRuntimeEngine
    from edgecv.errors import ConfigError
    from edgecv.vision.letterbox import preprocess

    if layout not in LAYOUTS:
        raise ConfigError(f"unknown --layout {layout!r}", hint=f"use one of {', '.join(LAYOUTS)}")
    source, out = Path(source), Path(out)
    with OnnxRuntimeEngine(source, task=task, names=names, layout=layout) as original:
        meta = with_input_size(original.meta, imgsz, model=source.name).replace(
            source_hash=file_sha256(source)[:16],
            edgecv_version=__version__,
        )
        meta = meta.replace(extra={**meta.extra, "adopted_from": source.name})
        recognised = _LAYOUTS.get(meta.output_format, meta.output_format)
        if original.meta_source == "edgecv metadata":
            recognised = f"already edgecv ({meta.arch or meta.output_format})"
        model = load_onnx(source)
        set_metadata(model, meta)
        # an existing `out` (even the source itself) is replaced only once the adopted file reproduced the original
        with atomic_output(out) as tmp:
            save_onnx(model, tmp)
            rng = np.random.default_rng(0)
            worst = 0.0
            with OnnxRuntimeEngine(tmp) as adopted:
                for i in range(images):
                    h, w = meta.input_size
                    frame = make_scene(rng, h, w if i % 2 == 0 else w * 4 // 3)[0]
                    x, _ = preprocess(frame, meta)
                    feeds = {original.inputs[0].name: x}
                    ref, got = original.infer(feeds), adopted.infer(feeds)
                    worst = max(worst, max(float(np.abs(ref[k] - got[k]).max()) for k in ref))
            if worst > 0:
                raise ExportError(f"the adopted model's outputs differ from the original's by {worst:.3g}", hint="report this model")
    classes = f"{meta.num_classes} classes" if meta.output_format != "seg_binary" else f"foreground {meta.names[1]!r}"
    return AdoptReport(out, meta, f"{recognised}, {classes}", worst)
