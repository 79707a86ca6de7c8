"""Calibration and held-out images: from an image folder, a video, or a COCO/YOLO dataset.

Images are split once, with a seeded shuffle, into a calibration set and a held-out set:
accuracy is never measured on the images the ranges came from. Images are decoded on
demand (a 512-image set is not held in memory); video frames are kept JPEG-encoded
(~50 kB each) because a video cannot be re-read at random cheaply. Every image goes
through exactly the runtime's preprocessing (:func:`edgecv.vision.letterbox.preprocess`
with the model's metadata), so calibration sees what inference will see.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

MIN_RECOMMENDED = 100
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv"})


@dataclass(frozen=True)
class CalibImage:
    """One image: a name for messages, a loader, and its dataset sample when labelled."""

    name: str
    loader: Callable[[], np.ndarray]
    sample: object | None = None  # edgecv.data.datasets.Sample

    def load(self) -> np.ndarray:
        return self.loader()

    def try_load(self, skipped: list[str] | None = None, *, what: str = "image", quiet: bool = False) -> np.ndarray | None:
        """The decoded frame, or None when it is unreadable (logged unless ``quiet``, and named in ``skipped``)."""
        try:
            frame = self.load()
        except DatasetError as exc:
            reason = exc.message
        else:
            if frame is not None:
                return frame
            reason = f"{self.name} is not a readable image"
        if not quiet:
            log.warning("skipped %s %s: %s", what, self.name, reason)
        if skipped is not None:
            skipped.append(self.name)
        return None


@dataclass
class ImageSet:
    """Images split into calibration and held-out sets.

    Attributes:
        calibration: images the ranges are computed from.
        holdout: images accuracy is measured on (disjoint from ``calibration``).
        dataset: the labelled dataset the held-out images come from, or None (unlabelled:
            the gate then measures agreement with the FP32 model).
        source: a description for the report.
    """

    calibration: list[CalibImage]
    holdout: list[CalibImage]
    dataset: object | None = None  # edgecv.data.datasets.Dataset
    source: str = ""
    skipped: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.dataset is not None


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_frames(path: Path, *, every: int | None, limit: int) -> list[CalibImage]:
    """Every ``every``-th frame of a video (spread over the whole video when None), at most ``limit``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DatasetError(f"cannot open video {path}", hint="check the file plays (ffprobe), or pass an image folder")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        step = every or max(1, total // limit if total > 0 else 1)
        if step < 1:
            raise ConfigError(f"--every must be >= 1, got {step}")
        frames: list[CalibImage] = []
        index = 0
        while len(frames) < limit:
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                    data = jpeg.tobytes()
                    frames.append(CalibImage(f"{path.name}#{index}", _jpeg_loader(data)))
            index += 1
    finally:
        cap.release()
    if not frames:
        raise DatasetError(f"no frames could be read from {path}", hint="check the file plays (ffprobe)")
    log.info("%s: %d frames, every %d-th", path, len(frames), step)
    return frames


def _jpeg_loader(data: bytes) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import cv2

        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    return load


def gather(
    data: str | Path,
    *,
    num: int,
    holdout: int | float = 0.2,
    every: int | None = None,
    seed: int = 0,
    val: str | Path | None = None,
) -> ImageSet:
    """Collect calibration and held-out images.

    Args:
        data: image folder/glob, video file, or COCO/YOLO dataset.
        num: calibration images wanted (fewer when ``data`` has fewer after the held-out split).
        holdout: held-out images taken from ``data`` (a count, or a fraction of it) when ``val``
            is None; 0 disables accuracy measurement.
        every: for a video, take every ``every``-th frame (default: spread over the video).
        seed: the shuffle seed.
        val: a separate held-out set (labelled dataset or images); ``data`` is then used
            for calibration only.

    Raises:
        DatasetError: no images, or the path does not exist.
        ConfigError: bad ``num`` / ``holdout``.
    """
    if num < 1:
        raise ConfigError(f"--num must be >= 1, got {num}")
    if isinstance(holdout, float) and not 0 <= holdout < 1 or isinstance(holdout, int) and holdout < 0:
        raise ConfigError(f"--holdout must be a fraction in [0, 1) or a count >= 0, got {holdout}")
    rng = random.Random(seed)
    if val is not None:
        images, _, source = _images_of(data, every=every, frames_wanted=num)
        held, held_dataset, held_source = _images_of(val, every=every, frames_wanted=num)
        rng.shuffle(images)
        rng.shuffle(held)
        return ImageSet(images[:num], held, held_dataset, f"{source}; held out: {held_source}")
    # a video gives num calibration frames plus the held-out share on top
    wanted = num + (holdout if isinstance(holdout, int) else int(np.ceil(num * holdout / (1 - holdout))))
    images, dataset, source = _images_of(data, every=every, frames_wanted=wanted)
    rng.shuffle(images)
    count = int(round(len(images) * holdout)) if isinstance(holdout, float) else holdout
    if holdout and count == 0 and len(images) > 1:
        count = 1
    if count >= len(images):
        raise DatasetError(
            f"{data} has {len(images)} images: too few to hold {count} out and calibrate on the rest",
            hint="add images, lower --holdout, or pass a separate --val set",
        )
    held, calib = images[:count], images[count:][:num]
    return ImageSet(calib, held, dataset if held else None, source)


def _images_of(data: str | Path, *, every: int | None, frames_wanted: int) -> tuple[list[CalibImage], object | None, str]:
    from edgecv.data.datasets import open_dataset

    path = Path(data)
    if is_video(path):
        if not path.is_file():
            raise DatasetError(f"video {path} does not exist")
        frames = video_frames(path, every=every, limit=frames_wanted)
        return frames, None, f"video {path} ({len(frames)} frames)"
    dataset = open_dataset(data)
    images = [CalibImage(s.path.name, s.load_image, s) for s in dataset.samples]
    labelled = dataset if dataset.kind != "images" else None
    return images, labelled, dataset.describe()


def tensors(images: list[CalibImage], meta: ModelMeta, skipped: list[str] | None = None) -> Iterator[np.ndarray]:
    """The model input for each readable image (runtime preprocessing); unreadable ones are skipped and named in ``skipped``."""
    from edgecv.vision.letterbox import preprocess

    for image in images:
        frame = image.try_load(skipped)
        if frame is None:
            continue
        tensor, _ = preprocess(frame, meta)
        yield tensor
