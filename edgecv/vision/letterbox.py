"""Letterbox resize that remembers its transform, and the host preprocessing built on it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgecv.artifact import ModelMeta


@dataclass(frozen=True, slots=True)
class LetterboxTransform:
    """How an image of ``src_size`` was mapped into the model input of ``dst_size``.

    ``dst = src * scale + (pad_x, pad_y)``; sizes are (height, width).
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    scale: float
    pad_x: float
    pad_y: float

    def boxes_to_src(self, xyxy: np.ndarray) -> np.ndarray:
        """Map (N, 4) boxes from model-input pixels back to the original image, clipped to it."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, [0, 2]] = (xyxy[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (xyxy[:, [1, 3]] - self.pad_y) / self.scale
        h, w = self.src_size
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])  # slices are views: fancy indexing would clip a copy
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out

    def boxes_to_dst(self, xyxy: np.ndarray) -> np.ndarray:
        """Map (N, 4) boxes from the original image into model-input pixels."""
        out = np.asarray(xyxy, dtype=np.float32).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out

    def content_window(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the resized image inside the padded model input."""
        h, w = self.src_size
        y0, x0 = int(round(self.pad_y)), int(round(self.pad_x))
        return y0, y0 + int(round(h * self.scale)), x0, x0 + int(round(w * self.scale))


@dataclass(frozen=True, slots=True)
class LetterboxGeometry:
    """Where a ``src`` image lands in the model input: resized to ``new`` (h, w) at (top, left) of ``out`` (h, w).

    Shared by the CPU letterbox and the CUDA kernel (:mod:`edgecv.cuda.preprocess`), so
    both sample the same grid.
    """

    src: tuple[int, int]
    new: tuple[int, int]
    out: tuple[int, int]
    top: int
    left: int
    scale: float

    @property
    def transform(self) -> LetterboxTransform:
        return LetterboxTransform(self.src, self.out, self.scale, float(self.left), float(self.top))


def letterbox_geometry(
    src_hw: tuple[int, int], size: tuple[int, int], *, stride: int | None = None, align: str = "center", rounding: str = "round"
) -> LetterboxGeometry:
    """The letterbox layout of a ``src_hw`` image in a ``size`` (h, w) input; see :func:`letterbox`."""
    src_h, src_w = src_hw
    dst_h, dst_w = size
    scale = min(dst_h / src_h, dst_w / src_w)
    if rounding == "floor":  # YOLOX's preproc: int(w * r), int(h * r)
        new_w, new_h = max(1, int(src_w * scale)), max(1, int(src_h * scale))
    else:
        new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
    if stride:
        out_h = min(dst_h, -(-new_h // stride) * stride)
        out_w = min(dst_w, -(-new_w // stride) * stride)
    else:
        out_h, out_w = dst_h, dst_w
    pad_x, pad_y = (out_w - new_w) / 2, (out_h - new_h) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    if align == "top-left":  # YOLOX pads only right and bottom
        top = left = 0
    return LetterboxGeometry((src_h, src_w), (new_h, new_w), (out_h, out_w), top, left, scale)


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    pad_value: int = 114,
    stride: int | None = None,
    align: str = "center",
    rounding: str = "round",
) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``image`` to fit ``size`` (h, w) keeping its aspect ratio, then pad, centred.

    With ``stride`` set (models with dynamic input size), padding is minimal: each
    side is padded only up to the next multiple of ``stride`` instead of to ``size``,
    so a 4:3 frame into a 320x320 model becomes 320x256 (fewer pixels, faster).

    Args:
        image: (H, W, 3) uint8.
        size: target (height, width).
        align: "center" (Ultralytics, edgecv) or "top-left" (YOLOX: padding only right and bottom).
        rounding: how the resized size is rounded: "round" (Ultralytics, edgecv) or "floor" (YOLOX).
    Returns:
        (h', w', 3) uint8 padded image and the transform that maps boxes back.
    """
    g = letterbox_geometry(image.shape[:2], size, stride=stride, align=align, rounding=rounding)
    (new_h, new_w), (out_h, out_w) = g.new, g.out
    if (new_h, new_w) != g.src:
        # bilinear, as Ultralytics' LetterBox does (INTER_AREA costs ~5x more at 640x480 -> 256x192)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    else:
        resized = image
    bottom, right = out_h - new_h - g.top, out_w - new_w - g.left
    if g.top or bottom or g.left or right:
        resized = cv2.copyMakeBorder(resized, g.top, bottom, g.left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return resized, g.transform


def pad_stride(meta: ModelMeta) -> int | None:
    """The stride to pad to (minimal padding) for a dynamic model, or None to pad to the full input size."""
    return meta.stride if meta.dynamic and not meta.square else None


def preprocess(image: np.ndarray, meta: ModelMeta) -> tuple[np.ndarray, LetterboxTransform]:
    """BGR uint8 frame -> model input tensor, as the model's metadata prescribes.

    Returns (1, 3, h, w) float32 normalized (or (1, h, w, 3) uint8 BGR when the
    model does its own preprocessing in the graph) and the letterbox transform.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {image.shape} {image.dtype}")
    boxed, transform = letterbox(
        image, meta.input_size, pad_value=meta.pad_value, stride=pad_stride(meta), align=meta.pad_align, rounding=meta.resize_rounding
    )
    if meta.preprocess_in_graph:
        return boxed[None], transform
    # one pass from the uint8 HWC image (channels reversed for RGB) into a fresh NCHW float32 tensor:
    # converting first and transposing the float copy after costs ~9x more (two 4-byte-per-value copies)
    h, w = boxed.shape[:2]
    x = np.empty((1, 3, h, w), np.float32)
    src = boxed[:, :, ::-1] if meta.color == "RGB" else boxed
    np.multiply(src.transpose(2, 0, 1), np.float32(1 / 255), out=x[0], dtype=np.float32)
    if any(meta.mean) or any(s != 1 for s in meta.std):
        x[0] -= np.asarray(meta.mean, np.float32)[:, None, None]
        x[0] /= np.asarray(meta.std, np.float32)[:, None, None]
    return x, transform
