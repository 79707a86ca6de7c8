"""Image and detection conversions (no ROS needed: messages are stand-ins with the same fields)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgecv.errors import ConfigError
from edgecv.ros.convert import image_to_bgr
from edgecv.ros.node import RosNodeConfig


def image(arr: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, step=rows.shape[1], encoding=encoding, data=rows.tobytes())


def test_encodings_and_row_padding() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_bgr(image(bgr, "bgr8", pad=3)), bgr)
    np.testing.assert_array_equal(image_to_bgr(image(bgr[..., ::-1].copy(), "rgb8")), bgr)
    alpha = np.full((5, 7, 1), 255, np.uint8)
    np.testing.assert_array_equal(image_to_bgr(image(np.concatenate([bgr, alpha], 2), "bgra8")), bgr)
    np.testing.assert_array_equal(image_to_bgr(image(np.concatenate([bgr[..., ::-1], alpha], 2), "rgba8")), bgr)
    gray = bgr[..., 0].copy()
    out = image_to_bgr(image(gray, "mono8", pad=1))
    assert out.shape == (5, 7, 3) and (out == gray[..., None]).all()
    assert out.flags.c_contiguous and out.flags.writeable


def test_bad_images() -> None:
    with pytest.raises(ConfigError, match="encoding '16UC1' is not supported"):
        image_to_bgr(image(np.zeros((2, 2, 2), np.uint8), "16UC1"))
    msg = image(np.zeros((4, 4, 3), np.uint8), "bgr8")
    msg.data = msg.data[:-5]
    with pytest.raises(ConfigError, match="too short"):
        image_to_bgr(msg)


def test_node_config_validation() -> None:
    with pytest.raises(ConfigError, match="conf and iou"):
        RosNodeConfig("m.onnx", conf=2.0)
    with pytest.raises(ConfigError, match="qos_depth"):
        RosNodeConfig("m.onnx", qos_depth=0)
    with pytest.raises(ConfigError, match="own source"):
        RosNodeConfig("m.onnx", max_frames=5)
