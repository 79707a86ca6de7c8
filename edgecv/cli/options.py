"""Option parsing and help texts shared by several commands."""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import ConfigError

NMS_HELP = "Add NMS to the graph: onnx (runs on ONNX Runtime and TensorRT) or efficient (EfficientNMS_TRT, TensorRT only)."
PRE_HELP = "Input becomes uint8 NHWC BGR; cast, color order, normalization and layout happen in the graph."
FP16_HELP = "Mixed-precision FP16 graph (I/O and sensitive ops FP32): how TensorRT 11 takes FP16; runs on ONNX Runtime."


def names_arg(path: Path | None) -> tuple[str, ...] | None:
    from edgecv.artifact import read_names_file

    return read_names_file(path) if path else None


def int_list(text: str | None, option: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}", hint=f"e.g. {option} 0,2") from None


def batch_range(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        lo, opt, hi = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--dynamic-batch takes MIN:OPT:MAX, got {text!r}", hint="e.g. --dynamic-batch 1:4:16") from None
    return lo, opt, hi


def default_model(model: Path | None) -> Path:
    from edgecv import assets

    return model if model is not None else assets.shipped(assets.DEFAULT_MODELS["detect"])


