"""Dataset readers: COCO, YOLO and image folders, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.data import datasets
from edgecv.data.datasets import Dataset, list_images, open_dataset
from edgecv.errors import DatasetError


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), 127, np.uint8))
    return path


def _coco(root: Path, *, masks: bool = False) -> Path:
    """Two images (40x30, 20x10), categories with non-contiguous ids 3 and 7, one crowd box."""
    _image(root / "images" / "a.jpg", 40, 30)
    _image(root / "images" / "sub" / "b.png", 20, 10)
    coco = {
        "images": [
            {"id": 11, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 5, "file_name": "sub/b.png", "width": 20, "height": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 1},
            {"id": 3, "image_id": 5, "category_id": 3, "bbox": [2.5, 1, 3, 3], "area": 9},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    if masks:
        (root / "masks").mkdir()
        cv2.imwrite(str(root / "masks" / "a.png"), np.full((30, 40), 2, np.uint8))
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_layout(tmp_path: Path) -> None:
    _coco(tmp_path, masks=True)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, Dataset) and ds.kind == "coco" and len(ds) == 2
    assert ds.names == ("cat", "dog") and ds.category_ids == (3, 7)  # sorted by category id
    a, b = ds.samples
    assert (a.image_id, a.width, a.height, a.path.name) == (11, 40, 30, "a.jpg")
    np.testing.assert_array_equal(a.boxes, [[1, 2, 11, 7], [0, 0, 4, 4]])
    assert a.boxes.dtype == np.float32 and a.class_ids.dtype == np.int32
    np.testing.assert_array_equal(a.class_ids, [1, 0])
    np.testing.assert_array_equal(a.iscrowd, [False, True])
    np.testing.assert_allclose(b.boxes, [[2.5, 1, 5.5, 4]])
    assert b.path == tmp_path / "images" / "sub" / "b.png"
    assert a.load_image().shape == (30, 40, 3)
    mask = a.load_semantic_mask()
    assert mask is not None and mask.dtype == np.int32 and mask.shape == (30, 40) and mask.max() == 2
    assert b.semantic_mask_path is None and b.load_semantic_mask() is None
    assert not ds.has_masks and "2 images" in ds.describe()
    assert open_dataset(tmp_path / "annotations.json").names == ("cat", "dog")  # the json directly


def test_standard_coco_layout(tmp_path: Path) -> None:
    ann = _coco(tmp_path / "tmp")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(ann.read_text())
    (tmp_path / "tmp" / "images").rename(tmp_path / "val2017")
    ds = open_dataset(tmp_path)
    assert ds.kind == "coco" and ds.samples[0].path == tmp_path / "val2017" / "a.jpg"


def test_coco_errors(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    ann.write_text(ann.read_text()[:-20])
    with pytest.raises(DatasetError, match=r"not valid JSON: .* line 1, column"):
        open_dataset(tmp_path)
    _coco(tmp_path)
    for f in (tmp_path / "images").rglob("*.*"):
        f.unlink()
    with pytest.raises(DatasetError, match="cannot find the images") as info:
        open_dataset(tmp_path)
    assert "images" in str(info.value.hint)

    bad = tmp_path / "bad"
    _coco(bad)
    data = json.loads((bad / "annotations.json").read_text())
    data["annotations"][0]["category_id"] = 99
    (bad / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="category_id 99"):
        open_dataset(bad)
    del data["annotations"][0]["bbox"]
    (bad / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotations\[0\] \(id 1\) is malformed"):
        open_dataset(bad)


def _yolo(root: Path, split: str = "") -> None:
    images, labels = root / "images" / split, root / "labels" / split
    _image(images / "0.jpg", 100, 50)
    _image(images / "1.PNG", 10, 10)
    _image(images / "2.jpg", 10, 10)  # no label file: background image
    labels.mkdir(parents=True)
    (labels / "0.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.2 0.2\n")
    (labels / "1.txt").write_text("2 0.1 0.1 0.5 0.1 0.5 0.5\n")  # a polygon


@pytest.mark.parametrize("names_file", ["data.yaml list", "data.yaml map", "data.yaml block", "classes.txt"])
def test_yolo_layout(tmp_path: Path, names_file: str) -> None:
    _yolo(tmp_path)
    if names_file == "classes.txt":
        (tmp_path / "classes.txt").write_text("a\nb b\nc\n")
    elif names_file == "data.yaml list":
        (tmp_path / "data.yaml").write_text("path: .  # root\nval: images\nnames: ['a', \"b b\", c]\n")
    elif names_file == "data.yaml map":
        (tmp_path / "data.yaml").write_text("names:\n  0: a\n  1: 'b b'\n  2: c\ndownload: |\n  x = 1\n")
    else:
        (tmp_path / "data.yaml").write_text("names:\n  - a\n  - b b  # comment\n  - c\n")
    ds = open_dataset(tmp_path)
    assert ds.kind == "yolo" and ds.names == ("a", "b b", "c") and ds.has_names and len(ds) == 3
    s0, s1, s2 = ds.samples
    assert (s0.width, s0.height) == (100, 50)
    np.testing.assert_allclose(s0.boxes, [[40, 15, 60, 35], [0, 5, 20, 15]], atol=1e-4)
    np.testing.assert_array_equal(s0.class_ids, [1, 0])
    np.testing.assert_allclose(s1.boxes, [[1, 1, 5, 5]], atol=1e-5)
    assert len(s2) == 0 and s2.boxes.shape == (0, 4)


def test_yolo_split_layout_and_yaml(tmp_path: Path) -> None:
    _yolo(tmp_path, "val")
    _yolo(tmp_path, "train")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: a, 1: b, 2: c}\n")
    ds = open_dataset(tmp_path)
    assert ds.samples[0].path.parent.name == "val" and ds.names == ("a", "b", "c")
    assert open_dataset(tmp_path, split="train").samples[0].path.parent.name == "train"
    assert open_dataset(tmp_path / "data.yaml").samples[0].path.parent.name == "val"
    assert open_dataset(tmp_path / "images" / "train").samples[0].path.parent.name == "train"
    with pytest.raises(DatasetError, match="no split 'test'"):
        open_dataset(tmp_path, split="test")


def test_yolo_without_names(tmp_path: Path) -> None:
    _yolo(tmp_path)
    ds = open_dataset(tmp_path)
    assert ds.names == ("class0", "class1", "class2") and not ds.has_names


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "expected 5 values"),
        ("0 0.5 0.5 x 0.2", "not a list of numbers"),
        ("0 50 40 20 20", "normalised to 0-1"),
        ("1.5 0.5 0.5 0.2 0.2", "not a valid class index"),
        ("7 0.5 0.5 0.2 0.2", r"not a valid class index \(the names file lists 3 classes\)"),
    ],
)
def test_yolo_bad_line(tmp_path: Path, line: str, message: str) -> None:
    _yolo(tmp_path)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    (tmp_path / "labels" / "1.txt").write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(DatasetError, match=message) as info:
        open_dataset(tmp_path)
    assert "1.txt:2:" in str(info.value)


def test_image_folder_and_glob(tmp_path: Path) -> None:
    _image(tmp_path / "b.JPG")
    _image(tmp_path / "a.png")
    _image(tmp_path / "sub" / "c.webp")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG"]
    assert [p.name for p in list_images(f"{tmp_path}/**/*")] == ["a.png", "b.JPG", "c.webp"]
    assert list_images(f"{tmp_path}/*.bmp") == []
    ds = open_dataset(tmp_path)
    assert ds.kind == "images" and len(ds) == 2 and ds.names == () and len(ds.samples[0]) == 0
    assert ds.samples[1].size == (40, 30)  # read from the image
    assert len(open_dataset(f"{tmp_path}/*.png")) == 1
    assert len(open_dataset(tmp_path / "a.png")) == 1


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no images or annotations found") as info:
        open_dataset(tmp_path)
    assert "annotations.json" in str(info.value)  # the hint lists the layouts
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        open_dataset(tmp_path)


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    sample = open_dataset(tmp_path).samples[0]
    with pytest.raises(DatasetError, match="is not a readable image"):
        sample.load_image()


def test_yaml_is_read_by_pyyaml_with_types_and_nesting(tmp_path: Path) -> None:
    text = (
        "# c\npath: ../x\nnames: ['a, b', c]  # two\nnc: 2\nscale: 0.5\nrect: false\n"
        "extra:\n  nested: {k: [1, 2]}\ndownload: |\n  import os\n  a: b\n"
    )
    (tmp_path / "data.yaml").write_text(text)
    data = datasets._load_yaml(tmp_path / "data.yaml")
    assert data["names"] == ["a, b", "c"] and data["nc"] == 2 and data["scale"] == 0.5 and data["rect"] is False
    assert data["extra"] == {"nested": {"k": [1, 2]}} and data["download"].startswith("import os")
    (tmp_path / "bad.yaml").write_text("names: [a, b\n")
    with pytest.raises(DatasetError, match="is not valid YAML"):
        datasets._load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(DatasetError, match="is not a YAML mapping"):
        datasets._load_yaml(tmp_path / "list.yaml")
