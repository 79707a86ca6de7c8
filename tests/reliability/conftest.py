"""Fixtures of the reliability suite: a folder of good outputs, broken models and videos."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecv import assets

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tiny_models


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only inputs shared by the cases: a clip, a truncated and a garbage video, broken and foreign models."""
    from tiny_models import constant_outputs

    from edgecv.data.synthetic import write_demo_video

    root = tmp_path_factory.mktemp("media")
    clip = write_demo_video(root / "clip.avi", num_frames=60, size=(240, 320), seed=3)
    data = clip.read_bytes()
    (root / "cut.avi").write_bytes(data[: len(data) * 3 // 10])  # decodes ~18 of its 60 declared frames
    long = write_demo_video(root / "long.avi", num_frames=400, size=(240, 320), seed=4)
    assert long.exists()
    rng = np.random.default_rng(0)
    (root / "garbage.mp4").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    det = assets.shipped("shapes-det").read_bytes()
    (root / "corrupt.onnx").write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    (root / "truncated.onnx").write_bytes(det[: len(det) // 2])
    (root / "empty.onnx").write_bytes(b"")
    # a valid ONNX whose output edgecv does not recognise (no metadata, shape (1, 7))
    constant_outputs(root / "foreign.onnx", [("out", np.zeros((1, 7), np.float32))])
    return root


@pytest.fixture
def world(tmp_path: Path, media: Path) -> Path:
    """A working folder holding good outputs of an earlier run (which no failure may damage) and the media."""
    for name in ("clip.avi", "cut.avi", "long.avi", "garbage.mp4", "corrupt.onnx", "truncated.onnx", "empty.onnx", "foreign.onnx"):
        (tmp_path / name).symlink_to(media / name)
    (tmp_path / "good.jsonl").write_text('{"frame": 0}\n{"frame": 1}\n')
    (tmp_path / "good.json").write_text('{"fps": 30.0}\n')
    shutil.copy(media / "clip.avi", tmp_path / "good.avi")
    shutil.copy(assets.shipped("shapes-det"), tmp_path / "good.onnx")
    return tmp_path
