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
    same = image_to_bgr(image(bgr, "bgr8"))
    np.testing.assert_array_equal(same, bgr)
    assert same.flags.writeable and same.flags.c_contiguous  # a copy, even of read-only bytes
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


def test_cli_errors(det_onnx) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from edgecv._optional import is_available
    from edgecv.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["ros", str(det_onnx), "--max-frames", "5"])
    assert res.exit_code == 2 and "own source" in res.output
    res = runner.invoke(app, ["ros", str(det_onnx), "stray", "--ros-args"])
    assert res.exit_code == 2 and "--ros-args" in res.output
    if not is_available("rclpy"):  # the main venv: the extra is missing, one line and a fix
        res = runner.invoke(app, ["ros", str(det_onnx)])
        assert res.exit_code == 3 and "rclpy is not importable" in res.output and "edgecv[ros]" in res.output
