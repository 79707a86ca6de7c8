"""Fixtures for the stream tests (helpers live in streamkit.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamkit import FakeModel, write_video


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """60 frames, 64x48, 30 fps, MJPG .avi."""
    return write_video(tmp_path / "clip.avi")


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "v.avi", **kwargs: object) -> Path:
        return write_video(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()
