"""Training code of the shipped models: data pool, losses, a few real steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgecv.zoo.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from edgecv.zoo.registry import get_architecture  # noqa: E402
from edgecv.zoo.training import ScenePool, TrainConfig, box_iou_pairwise, detection_loss, train  # noqa: E402


def test_scene_pool_labels_match_the_letterboxed_images() -> None:
    pool = ScenePool.generate(6, 128, seed=3)
    assert pool.images.shape == (6, 128, 128, 3) and pool.semantic.shape == (6, 128, 128)
    for boxes, sem in zip(pool.boxes, pool.semantic):
        assert (boxes >= -0.5).all() and (boxes <= 128.5).all()
        for x1, y1, x2, y2 in boxes:
            # each box contains labelled (non-background) pixels
            assert sem[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].any()


def test_giou_of_identical_and_disjoint_boxes() -> None:
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[20.0, 0, 30, 10]])
    assert torch.allclose(box_iou_pairwise(a, a, giou=True), torch.tensor([1.0]))
    assert box_iou_pairwise(a, b).item() == 0 and box_iou_pairwise(a, b, giou=True).item() < 0


def test_detection_loss_is_lower_for_the_right_answer() -> None:
    """Train a tiny detector on one image: the loss must fall a lot, i.e. the assignment and gradients work."""
    torch.manual_seed(0)
    model = get_architecture("shapes-det").build(2, width=0.25).train()
    x = torch.rand(1, 3, 64, 64)
    gt = torch.tensor([[[8.0, 8, 40, 40]]])
    cls = torch.tensor([[1]])
    valid = torch.tensor([[True]])
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(40):
        loss, parts = detection_loss(model, x, gt, cls, valid)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert set(parts) == {"cls", "box", "l1"}


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_train_a_few_steps_and_round_trip_the_checkpoint(task: str, tmp_path: Path) -> None:
    pool = ScenePool.generate(8, 64, seed=1)
    cfg = TrainConfig(task, iterations=3, batch=2, width=0.25, size=64, warmup=1)
    model = train(cfg, pool=pool)
    assert not model.training
    names = ("a", "b", "c", "d") if task == "detect" else ("bg", "a", "b", "c", "d")
    arch = "shapes-det" if task == "detect" else "shapes-seg"
    path = save_checkpoint(model, tmp_path / "m.pt", arch=arch, names=names, width=0.25)
    again, info = load_checkpoint(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))
    assert info["names"] == list(names)
