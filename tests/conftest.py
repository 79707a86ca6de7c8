"""Shared fixtures: shipped models, a small held-out dataset and a demo video, all made locally."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgecv import assets

ROOT = Path(__file__).resolve().parent.parent


def _has_gpu() -> bool:
    try:
        from cuda.bindings import runtime  # type: ignore[import-not-found]

        err, count = runtime.cudaGetDeviceCount()
        return int(err) == 0 and count > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from edgecv._optional import is_available

    skip_gpu = pytest.mark.skip(reason="no NVIDIA GPU here")
    skip_trt = pytest.mark.skip(reason="TensorRT is not importable here")
    gpu = _has_gpu()
    trt = is_available("tensorrt")
    for item in items:
        if "gpu" in item.keywords and not gpu:
            item.add_marker(skip_gpu)
        if "tensorrt" in item.keywords and not trt:
            item.add_marker(skip_trt)


@pytest.fixture(scope="session")
def det_onnx() -> Path:
    return assets.shipped("shapes-det")


@pytest.fixture(scope="session")
def seg_onnx() -> Path:
    return assets.shipped("shapes-seg")


@pytest.fixture(scope="session")
def shapes_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small held-out shapes dataset (seed differs from training's)."""
    from edgecv.data.synthetic import write_coco_dataset

    out = tmp_path_factory.mktemp("shapes-val")
    write_coco_dataset(out, 24, seed=1234)
    return out


@pytest.fixture(scope="session")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short demo video (640x480, 24 frames) with per-frame ground truth."""
    from edgecv.data.synthetic import write_demo_video

    out = tmp_path_factory.mktemp("video") / "demo.avi"
    return write_demo_video(out, num_frames=24, seed=7)


@pytest.fixture
def copy_of(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(path: Path) -> Path:
        dest = tmp_path / path.name
        shutil.copy(path, dest)
        return dest

    return make
