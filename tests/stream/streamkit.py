"""Helpers for the stream tests: tiny videos whose frames encode their index, and a fake model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgecv.results import Detections

W, H = 64, 48


def index_frame(i: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """A BGR frame encoding ``i`` (0..1023) as two flat grey halves: left = (i % 32) * 8, right = (i // 32) * 8.

    Flat regions survive MJPG/mp4v compression (even re-encoding); :func:`frame_index` reads it back.
    """
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = (i % 32) * 8
    img[:, w // 2 :] = (i // 32) * 8
    return img


def frame_index(img: np.ndarray) -> int:
    """Decode the index written by :func:`index_frame` from the centre of each half.

    Reads the green channel: grey survives the codecs' YUV round trip exactly in G,
    while B and R drift by a few levels per encode.
    """
    h, w = img.shape[:2]
    ys = slice(h // 4, 3 * h // 4)
    lo = int(round(float(img[ys, w // 8 : 3 * w // 8, 1].mean()) / 8))
    hi = int(round(float(img[ys, 5 * w // 8 : 7 * w // 8, 1].mean()) / 8))
    return lo + 32 * hi


def write_video(
    path: Path, n: int = 60, fps: float = 30.0, size: tuple[int, int] = (W, H), fourcc: str = "MJPG"
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write test video {path}"
    for i in range(n):
        writer.write(index_frame(i, size))
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int], list[int]]:
    """(frame count, (w, h), decoded indices) of a video, by reading it back."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    indices: list[int] = []
    size = (0, 0)
    while True:
        ok, img = cap.read()
        if not ok:
            break
        size = (img.shape[1], img.shape[0])
        indices.append(frame_index(img))
    cap.release()
    return len(indices), size, indices


class FakeModel:
    """The edgecv model interface with trivial compute.

    ``postprocess`` returns one box whose x1 is the index decoded from the frame's
    pixels, so tests can check results belong to the right frame.

    Args:
        infer_s: sleep in ``infer`` (a slow model).
        raise_at: raise ``exc`` from ``infer`` on this call number (0-based).
        on_call: called with the call number at each ``infer``.
    """

    task = "detect"
    names = ("thing",)

    def __init__(
        self,
        infer_s: float = 0.0,
        raise_at: int | None = None,
        exc: BaseException | None = None,
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        self.infer_s = infer_s
        self.raise_at = raise_at
        self.exc = exc or KeyboardInterrupt()
        self.on_call = on_call
        self.calls = 0
        self.thread_ids: set[int] = set()

    def preprocess(self, frame: np.ndarray) -> tuple[dict[str, np.ndarray], object]:
        return {"images": frame}, frame.shape[:2]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.calls
        self.calls += 1
        self.thread_ids.add(threading.get_ident())
        if self.on_call is not None:
            self.on_call(n)
        if self.raise_at is not None and n == self.raise_at:
            raise self.exc
        if self.infer_s:
            time.sleep(self.infer_s)
        return {"index": np.array([frame_index(feeds["images"])], np.float32)}

    def postprocess(self, outputs: dict[str, np.ndarray], transform: object) -> Detections:
        x = float(outputs["index"][0])
        return Detections(
            np.array([[x, 1.0, x + 4.0, 9.0]], np.float32),
            np.array([0.9], np.float32),
            np.array([0], np.int32),
            self.names,
        )
