from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgecv.data.synthetic import CLASSES, ground_truth_path, make_scene, write_coco_dataset, write_demo_video


def test_scenes_are_seeded_and_labels_are_tight() -> None:
    a = make_scene(np.random.default_rng(5))
    b = make_scene(np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and len(a[1]) == len(b[1])
    image, instances, semantic = a
    assert image.dtype == np.uint8 and semantic.shape == image.shape[:2]
    for inst in instances:
        ys, xs = np.nonzero(inst.mask)
        assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # the visible mask is exactly the pixels whose semantic label is this class
        assert np.all(semantic[inst.mask] == inst.class_id + 1)


def test_many_scenes_cover_every_class_and_occlusion() -> None:
    rng = np.random.default_rng(0)
    seen, occluded = set(), 0
    for _ in range(30):
        _, instances, semantic = make_scene(rng)
        seen |= {i.class_id for i in instances}
        occluded += sum(i.area < (semantic == i.class_id + 1).sum() for i in instances)
    assert seen == set(range(len(CLASSES)))
    assert occluded > 0


def test_coco_dataset_is_consistent(tmp_path: Path) -> None:
    ann = write_coco_dataset(tmp_path, 6, seed=2)
    coco = json.loads(ann.read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES)
    assert len(coco["images"]) == 6
    for img in coco["images"]:
        image = cv2.imread(str(tmp_path / "images" / img["file_name"]))
        mask = cv2.imread(str(tmp_path / "masks" / img["file_name"]), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (img["height"], img["width"]) == mask.shape
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and a["area"] <= w * h and a["segmentation"]


def test_demo_video_has_ground_truth_per_frame(tmp_path: Path) -> None:
    path = write_demo_video(tmp_path / "demo.avi", num_frames=10, size=(120, 160))
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    truth = json.loads(ground_truth_path(path).read_text())
    assert frames == 10 == len(truth["frames"])
    assert all(f["objects"] for f in truth["frames"])
