"""Calibration / held-out images from folders, datasets and videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecv.artifact import ModelMeta
from edgecv.errors import DatasetError
from edgecv.quant import calib_data


def test_split_is_disjoint_seeded_and_labelled(shapes_val: Path) -> None:
    first = calib_data.gather(shapes_val, num=100, holdout=0.25, seed=3)
    again = calib_data.gather(shapes_val, num=100, holdout=0.25, seed=3)
    other = calib_data.gather(shapes_val, num=100, holdout=0.25, seed=4)
    names = lambda images: [i.name for i in images]  # noqa: E731
    assert len(first.holdout) == 6 and len(first.calibration) == 18
    assert not set(names(first.holdout)) & set(names(first.calibration))
    assert names(first.calibration) == names(again.calibration) and names(first.holdout) == names(again.holdout)
    assert names(first.holdout) != names(other.holdout)
    assert first.labelled and first.holdout[0].sample is not None


def test_num_caps_calibration_and_image_folder_is_unlabelled(shapes_val: Path) -> None:
    images = calib_data.gather(shapes_val / "images", num=5, holdout=4)
    assert len(images.calibration) == 5 and len(images.holdout) == 4 and not images.labelled


def test_separate_val_set(shapes_val: Path, tmp_path: Path) -> None:
    images = calib_data.gather(shapes_val / "images", num=50, val=shapes_val)
    assert len(images.calibration) == 24 and len(images.holdout) == 24 and images.labelled


def test_video_every_kth_frame(demo_video: Path) -> None:
    images = calib_data.gather(demo_video, num=6, holdout=2, every=3)
    frames = images.calibration + images.holdout
    assert len(frames) == 8
    assert sorted(int(i.name.split("#")[1]) for i in frames) == [0, 3, 6, 9, 12, 15, 18, 21]
    assert frames[0].load().shape == (480, 640, 3)


def test_unreadable_images_are_skipped_and_counted(shapes_val: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for src in sorted((shapes_val / "images").iterdir())[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    images = calib_data.gather(folder, num=10, holdout=0)
    meta = ModelMeta("detect", ("a",), (64, 64), "yolov8")
    skipped: list[str] = []
    tensors = list(calib_data.tensors(images.calibration, meta, skipped))
    assert len(tensors) == 3 and skipped == ["broken.jpg"]
    assert tensors[0].shape == (1, 3, 64, 64) and tensors[0].dtype == np.float32


def test_empty_folder_and_too_few_images(tmp_path: Path, shapes_val: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):
        calib_data.gather(tmp_path / "empty", num=10)
    with pytest.raises(DatasetError, match="too few"):
        calib_data.gather(sorted((shapes_val / "images").iterdir())[0], num=10, holdout=1)
