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


IMGSZ_HELP = "Input size: one number (square) or H,W; multiples of the model's stride. Dynamic models only, unless it is the model's own size."
SQUARE_HELP = "Pad every frame to the full --imgsz (what a static TensorRT profile needs) instead of the minimal stride padding."


def imgsz_arg(text: str | None, option: str = "--imgsz") -> tuple[int, int] | None:
    """Parse ``--imgsz``: ``640`` -> (640, 640); ``480,640`` (or ``480x640``) -> (480, 640) as (height, width).

    The one parser every command uses; the size is then checked against the model by
    :func:`edgecv.artifact.with_input_size`.
    """
    if text is None:
        return None
    parts = text.strip().lower().replace("x", ",").split(",")
    hint = f"e.g. {option} 640 (square) or {option} 480,640 (height,width)"
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{option} takes one number or H,W, got {text!r}", hint=hint) from None
    if len(values) not in (1, 2):
        raise ConfigError(f"{option} takes one number or H,W, got {len(values)} numbers in {text!r}", hint=hint)
    if min(values) <= 0:
        raise ConfigError(f"{option} must be positive, got {text!r}", hint=hint)
    return (values[0], values[-1])


def threads_arg(threads: int | None, option: str = "--threads") -> int | None:
    """``--threads`` must be >= 1 when given (None: the runtime's default)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"{option} must be >= 1, got {threads}", hint=f"leave out {option} for the runtime's default (one per core)")
    return threads


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


