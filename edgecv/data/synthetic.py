"""Seeded synthetic "shapes" data: images, COCO datasets and a demo video with ground truth.

Scenes have textured, noisy backgrounds and several classes of filled shapes in
random colors, sizes, aspect ratios and rotations. Later shapes occlude earlier
ones; boxes and instance masks describe the *visible* part of each shape, and a
semantic mask gives the class of every pixel (0 = background, k = class k - 1 + 1).

Everything here needs only numpy and OpenCV, so the shipped models can be trained,
evaluated and demonstrated from the same code (``scripts/train_*.py``, tests).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecv.artifact import atomic_output

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("circle", "rectangle", "triangle", "star")
MIN_VISIBLE_FRACTION = 0.35  # shapes hidden more than this are dropped from the labels
MIN_VISIBLE_PIXELS = 40


@dataclass(frozen=True)
class Shape:
    """One shape's geometry: class, centre, half-size (rx, ry) in pixels, rotation in degrees."""

    class_id: int
    cx: float
    cy: float
    rx: float
    ry: float
    angle: float
    color: tuple[int, int, int]

    def polygon(self) -> np.ndarray:
        """(K, 2) float32 outline in pixels (circles are sampled as 48-gons)."""
        if self.class_id == 0:
            t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
            pts = np.stack([np.cos(t), np.sin(t)], 1)
        elif self.class_id == 1:
            pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
        elif self.class_id == 2:
            pts = np.array([[0, -1], [1, 0.8], [-1, 0.8]], np.float64)
        else:
            t = np.linspace(-np.pi / 2, 1.5 * np.pi, 10, endpoint=False)
            r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
            pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
        pts = pts * [self.rx, self.ry]
        a = math.radians(self.angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return (pts @ rot.T + [self.cx, self.cy]).astype(np.float32)

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool filled shape, anti-aliasing off so masks are exact."""
        canvas = np.zeros((height, width), np.uint8)
        pts = np.round(self.polygon() * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8, shift=4)
        return canvas.astype(bool)


@dataclass(frozen=True)
class Instance:
    """A visible object: class, tight box of its visible pixels (x1, y1, x2, y2), visible mask."""

    class_id: int
    box: tuple[float, float, float, float]
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured, noisy BGR uint8 background: gradient + low-frequency blobs + stripes + noise."""
    base = rng.uniform(40, 215, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(-1, 1, 2)
    grad = (xx * direction[0] + yy * direction[1]) / max(height, width)
    img = base[None, None, :] + grad[..., None] * rng.uniform(-60, 60, 3)
    low = cv2.resize(rng.normal(0, 1, (6, 6, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img += low * rng.uniform(5, 30)
    if rng.random() < 0.5:
        period = rng.uniform(6, 30)
        angle = rng.uniform(0, np.pi)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        img += stripes[..., None] * rng.uniform(4, 20)
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _distinct_color(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A saturated color far enough from the background's mean color to be visible."""
    bg = background.reshape(-1, 3).mean(0)
    for _ in range(20):
        color = rng.integers(0, 256, 3)
        if np.abs(color - bg).sum() > 150:
            break
    return (int(color[0]), int(color[1]), int(color[2]))


def random_shapes(
    rng: np.random.Generator, height: int, width: int, background: np.ndarray, count: int, size_range: tuple[float, float]
) -> list[Shape]:
    shapes = []
    short = min(height, width)
    for _ in range(count):
        class_id = int(rng.integers(0, len(CLASSES)))
        r = rng.uniform(*size_range) * short / 2
        aspect = rng.uniform(0.6, 1.6) if class_id in (0, 1) else rng.uniform(0.8, 1.25)
        rx, ry = r * math.sqrt(aspect), r / math.sqrt(aspect)
        angle = float(rng.uniform(0, 360))  # any orientation: a square turned 45 degrees is still a rectangle
        cx = rng.uniform(0.05, 0.95) * width
        cy = rng.uniform(0.05, 0.95) * height
        shapes.append(Shape(class_id, cx, cy, rx, ry, angle, _distinct_color(rng, background)))
    return shapes


def render(background: np.ndarray, shapes: list[Shape], rng: np.random.Generator | None = None) -> tuple[np.ndarray, list[Instance], np.ndarray]:
    """Draw ``shapes`` in order onto a copy of ``background``.

    Returns:
        image: (H, W, 3) uint8 BGR.
        instances: visible objects (those hidden beyond MIN_VISIBLE_FRACTION are dropped).
        semantic: (H, W) uint8, 0 = background, class_id + 1 elsewhere.
    """
    height, width = background.shape[:2]
    image = background.copy()
    semantic = np.zeros((height, width), np.uint8)
    owner = np.full((height, width), -1, np.int32)
    full_masks = []
    for i, shape in enumerate(shapes):
        mask = shape.mask(height, width)
        full_masks.append(mask)
        color = np.array(shape.color, np.float32)
        if rng is not None:  # mild shading so shapes are not perfectly flat
            shade = 1 + rng.normal(0, 0.04, (int(mask.sum()), 1))
            image[mask] = np.clip(color * shade, 0, 255).astype(np.uint8)
        else:
            image[mask] = color.astype(np.uint8)
        semantic[mask] = shape.class_id + 1
        owner[mask] = i
    instances = []
    for i, (shape, full) in enumerate(zip(shapes, full_masks)):
        visible = owner == i
        n_visible = int(visible.sum())
        if n_visible < MIN_VISIBLE_PIXELS or n_visible < MIN_VISIBLE_FRACTION * max(int(full.sum()), 1):
            continue
        ys, xs = np.nonzero(visible)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        instances.append(Instance(shape.class_id, box, visible))
    return image, instances, semantic


def make_scene(
    rng: np.random.Generator,
    height: int = 256,
    width: int = 256,
    max_objects: int = 6,
    size_range: tuple[float, float] = (0.12, 0.45),
) -> tuple[np.ndarray, list[Instance], np.ndarray]:
    """One random scene: see :func:`render` for what is returned."""
    background = random_background(rng, height, width)
    count = int(rng.integers(1, max_objects + 1))
    shapes = random_shapes(rng, height, width, background, count, size_range)
    image, instances, semantic = render(background, shapes, rng)
    image = cv2.GaussianBlur(image, (3, 3), 0) if rng.random() < 0.3 else image
    return image, instances, semantic


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def write_coco_dataset(
    out_dir: Path,
    num_images: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    vary_aspect: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a COCO-format shapes dataset: ``images/``, ``masks/`` (semantic PNGs), ``annotations.json``.

    Category ids are 1..K in :data:`CLASSES` order. With ``vary_aspect`` image sizes vary
    between 3:4 and 4:3 around ``size`` so letterboxing is exercised.

    Returns:
        the annotations.json path.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for index in range(num_images):
        h, w = size
        if vary_aspect:
            aspect = rng.choice([0.75, 1.0, 4 / 3])
            h, w = (h, int(round(w * aspect))) if aspect >= 1 else (int(round(h / aspect)), w)
        image, instances, semantic = make_scene(rng, h, w)
        name = f"{index:06d}"
        cv2.imwrite(str(out_dir / "images" / f"{name}.png"), image)
        cv2.imwrite(str(out_dir / "masks" / f"{name}.png"), semantic)
        images.append({"id": index + 1, "file_name": f"{name}.png", "width": w, "height": h})
        for inst in instances:
            x1, y1, x2, y2 = inst.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": inst.class_id + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(inst.area),
                    "iscrowd": 0,
                    "segmentation": _polygons(inst.mask),
                }
            )
        if progress:
            progress(index + 1, num_images)
    coco = {
        "info": {"description": f"edgecv synthetic shapes, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)],
    }
    path = out_dir / "annotations.json"
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(coco))
    return path


@dataclass
class _Mover:
    shape: Shape
    vx: float
    vy: float
    spin: float


def demo_frames(
    num_frames: int = 150, *, size: tuple[int, int] = (480, 640), seed: int = 7, num_objects: int = 5
) -> Iterator[tuple[np.ndarray, list[Instance]]]:
    """Frames of shapes moving and bouncing over a fixed background, with per-frame ground truth."""
    rng = np.random.default_rng(seed)
    height, width = size
    background = random_background(rng, height, width)
    shapes = random_shapes(rng, height, width, background, num_objects, (0.14, 0.3))
    movers = [
        _Mover(s, float(rng.uniform(-4, 4)), float(rng.uniform(-3, 3)), 0.0 if s.class_id == 0 else float(rng.uniform(-1.5, 1.5)))
        for s in shapes
    ]
    for _ in range(num_frames):
        image, instances, _ = render(background, [m.shape for m in movers])
        yield image, instances
        for m in movers:
            s = m.shape
            cx, cy = s.cx + m.vx, s.cy + m.vy
            if not s.rx < cx < width - s.rx:
                m.vx = -m.vx
            if not s.ry < cy < height - s.ry:
                m.vy = -m.vy
            m.shape = Shape(s.class_id, s.cx + m.vx, s.cy + m.vy, s.rx, s.ry, s.angle + m.spin, s.color)


def write_demo_video(
    path: Path, *, num_frames: int = 150, fps: float = 30.0, size: tuple[int, int] = (480, 640), seed: int = 7
) -> Path:
    """Write the demo video and ``<path>.gt.json`` (per-frame boxes, classes) next to it.

    The codec follows the suffix: ``.mp4`` -> mp4v, ``.avi`` -> MJPG.
    """
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    truth = []
    with atomic_output(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), fourcc, fps, (size[1], size[0]))
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write {path.suffix} video")
        try:
            for index, (image, instances) in enumerate(demo_frames(num_frames, size=size, seed=seed)):
                writer.write(image)
                truth.append(
                    {
                        "frame": index,
                        "objects": [
                            {"class_id": i.class_id, "class_name": CLASSES[i.class_id], "box": list(i.box)} for i in instances
                        ],
                    }
                )
        finally:
            writer.release()
    with atomic_output(ground_truth_path(path)) as tmp:
        tmp.write_text(json.dumps({"classes": list(CLASSES), "fps": fps, "frames": truth}))
    return path


def ground_truth_path(video: Path) -> Path:
    return Path(video).with_name(Path(video).name + ".gt.json")
