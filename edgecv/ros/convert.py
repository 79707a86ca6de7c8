"""Conversions between ROS 2 messages and edgecv's arrays and results (no cv_bridge needed).

The message classes are passed in or imported lazily, so this module imports without ROS.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from edgecv.errors import ConfigError
from edgecv.results import Detections

# sensor_msgs/Image encodings edgecv reads: name -> (channels, channel order to BGR)
_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "bgr8": (3, None),
    "rgb8": (3, (2, 1, 0)),
    "bgra8": (4, (0, 1, 2)),
    "rgba8": (4, (2, 1, 0)),
    "mono8": (1, None),
    "8UC3": (3, None),
    "8UC1": (1, None),
}


def image_to_bgr(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a (H, W, 3) uint8 BGR array (copied; ``step`` padding removed).

    Raises:
        ConfigError: the encoding is not an 8-bit colour or mono one, or the data is too short.
    """
    enc = str(msg.encoding)
    if enc not in _ENCODINGS:
        raise ConfigError(
            f"image encoding {enc!r} is not supported",
            hint=f"publish one of {', '.join(_ENCODINGS)} (e.g. image_proc's debayer output, or bgr8 from the camera driver)",
        )
    channels, order = _ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = msg.data
    buf = np.asarray(data, np.uint8).reshape(-1) if isinstance(data, (list, tuple)) else np.frombuffer(data, np.uint8)
    if step < w * channels or buf.size < h * step:
        raise ConfigError(f"image data too short: {buf.size} bytes for {w}x{h} {enc} with step {step}")
    img = buf[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if order is not None:
        img = img[..., list(order)]
    return np.array(img, order="C", copy=True)  # the model's own writable copy (the annotator draws on it)


def bgr_to_image(frame: np.ndarray, header: Any, image_cls: Any) -> Any:
    """A (H, W, 3) uint8 BGR array as a ``sensor_msgs/Image`` (``bgr8``) with ``header``."""
    msg = image_cls()
    msg.header = header
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding = "bgr8"
    msg.is_bigendian = 0
    msg.step = int(frame.shape[1] * 3)
    msg.data = array.array("B", np.ascontiguousarray(frame).tobytes())  # rclpy's fast path for uint8[]
    return msg


def detections_to_msg(detections: Detections, header: Any, msgs: Any) -> Any:
    """``Detections`` as a ``vision_msgs/Detection2DArray`` with ``header`` on the array and every detection.

    Each ``Detection2D`` has one hypothesis (``class_id``: the class name, or the class index
    as text when the model has no names; ``score``), an axis-aligned ``bbox`` (centre and
    size in pixels, ``theta`` 0) and ``id``: the track ID as text, or ``""`` when the detection
    is not tracked (vision_msgs: "this field may be empty").

    Args:
        detections: one frame's detections (pixels of the input image).
        header: the input image's ``std_msgs/Header`` (stamp and frame_id are kept).
        msgs: the ``vision_msgs.msg`` module.
    """
    out = msgs.Detection2DArray()
    out.header = header
    names = detections.class_names
    ids = detections.tracker_id.tolist() if detections.tracker_id is not None else [-1] * len(detections)
    items = []
    for box, score, name, tid in zip(detections.xyxy.tolist(), detections.scores.tolist(), names, ids):
        x1, y1, x2, y2 = box
        d = msgs.Detection2D()
        d.header = header
        hyp = msgs.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = name
        hyp.hypothesis.score = float(score)
        d.results = [hyp]
        d.bbox.center.position.x = (x1 + x2) / 2.0
        d.bbox.center.position.y = (y1 + y2) / 2.0
        d.bbox.center.theta = 0.0
        d.bbox.size_x = x2 - x1
        d.bbox.size_y = y2 - y1
        d.id = str(tid) if tid >= 0 else ""
        items.append(d)
    out.detections = items
    return out


def msg_to_xyxy(msg: Any) -> np.ndarray:
    """The boxes of a ``Detection2DArray`` as (N, 4) float32 x1 y1 x2 y2 (for tests and consumers)."""
    rows = []
    for d in msg.detections:
        cx, cy, w, h = d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y
        rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.asarray(rows, np.float32).reshape(-1, 4)
