"""Structured pruning and 2:4 sparsity on the shipped models (Python API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from edgecv import assets  # noqa: E402
from edgecv.errors import ConfigError, ExportError  # noqa: E402
from edgecv.optimize.prune import MaskHolder, apply_2_4, has_2_4, mask_2_4, onnx_2_4_report, output_layers, prune  # noqa: E402
from edgecv.optimize.structure import params_and_macs, split_c2f, structure_of  # noqa: E402
from edgecv.zoo.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


@pytest.fixture
def det() -> tuple:
    return load_checkpoint(assets.shipped("shapes-det", ".pt"))


EXAMPLE = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))


def test_split_c2f_is_exact(det: tuple) -> None:
    model, _ = det
    with torch.no_grad():
        before = model(EXAMPLE)
        assert split_c2f(model) == 8
        assert torch.equal(model(EXAMPLE), before)


def test_heads_are_found_and_protected(det: tuple) -> None:
    model, _ = det
    heads = output_layers(model, EXAMPLE)
    assert heads == [f"heads.{i}.{part}" for i in range(3) for part in ("box.2", "cls.1")]
    seg, _ = load_checkpoint(assets.shipped("shapes-seg", ".pt"))
    assert output_layers(seg, EXAMPLE) == ["seg_head.1"]
    prune(model, EXAMPLE, ratio=0.3)
    modules = dict(model.named_modules())
    assert [modules[h].out_channels for h in heads] == [4, 4, 4, 4, 4, 4]  # outputs unchanged
    assert model(EXAMPLE).shape == (1, 8, 1344)


def test_pruned_checkpoint_rebuilds_with_weights_only(det: tuple, tmp_path: Path) -> None:
    model, info = det
    params, macs = params_and_macs(model, EXAMPLE)
    prune(model, EXAMPLE, ratio=0.3, round_to=8)
    p_params, p_macs = params_and_macs(model, EXAMPLE)
    assert p_params < 0.6 * params and p_macs < 0.6 * macs
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 or c.out_channels == 4 for c in convs)  # rounded; heads keep 4 / nc
    path = save_checkpoint(model, tmp_path / "p.pt", arch=info["arch"], names=tuple(info["names"]), width=info["width"], structure=structure_of(model))
    raw = torch.load(path, weights_only=True)  # nothing pickled but containers and tensors
    assert raw["structure"]["layers"]["stem.0.conv"]["out_channels"] == model.stem[0].conv.out_channels
    again, _ = load_checkpoint(path)
    with torch.no_grad():
        assert torch.allclose(again(EXAMPLE), model.eval()(EXAMPLE), atol=1e-5)


def test_bad_ratio_importance_and_ignore(det: tuple) -> None:
    model, _ = det
    for ratio in (0, 1, -0.2, 1.5):
        with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
            prune(model, EXAMPLE, ratio=ratio)
    with pytest.raises(ConfigError, match="unknown importance"):
        prune(model, EXAMPLE, ratio=0.2, importance="random")
    with pytest.raises(ConfigError, match="taylor"):
        prune(model, EXAMPLE, ratio=0.2, importance="taylor")
    with pytest.raises(ConfigError, match="matches no layer"):
        prune(model, EXAMPLE, ratio=0.2, ignore=["backbone.*"])


def test_ignored_layers_keep_their_channels(det: tuple) -> None:
    model, _ = det
    before = model.stem[0].conv.out_channels
    prune(model, EXAMPLE, ratio=0.4, ignore=["stem.0.conv"])
    assert model.stem[0].conv.out_channels == before


def test_taylor_uses_gradients(det: tuple) -> None:
    model, _ = det
    from edgecv.zoo.training import ScenePool, loss_on

    pool = ScenePool.generate(8, 256, 3)
    prune(model, EXAMPLE, ratio=0.2, importance="taylor", loss_fn=lambda m: loss_on(m, "detect", pool, batches=1, batch=4))
    assert model(EXAMPLE).shape == (1, 8, 1344)


def test_an_untraceable_group_names_its_layer() -> None:
    nn = torch.nn

    class ChunkBlock(nn.Module):  # the C2f pattern Torch-Pruning mis-sizes, in a user model edgecv does not know
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.cv1 = nn.Conv2d(16, 32, 1)
            self.block = nn.Conv2d(16, 16, 3, padding=1)
            self.cv2 = nn.Conv2d(48, 16, 1)
            self.head = nn.Conv2d(16, 5, 1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            parts = list(self.cv1(self.stem(x)).chunk(2, 1))
            parts.append(parts[-1] + self.block(parts[-1]))
            return self.head(self.cv2(torch.cat(parts, 1)))

    with pytest.raises(ExportError, match="channel group of layer") as info:
        prune(ChunkBlock().eval(), torch.rand(1, 3, 32, 32), ratio=0.5)
    assert "--ignore" in info.value.hint


def test_2_4_pattern_masks_and_holds(det: tuple) -> None:
    w = torch.randn(8, 16, 3, 3)
    mask = mask_2_4(w)
    assert has_2_4((w * mask).numpy()) and not has_2_4(w.numpy())
    assert int(mask.sum()) == w.numel() // 2
    model, _ = det
    masks = apply_2_4(model, example_input=EXAMPLE)
    modules = dict(model.named_modules())
    assert len(masks) > 40 and "stem.0.conv" not in masks and "heads.0.cls.1" not in masks  # 3 input channels; a head
    assert all(has_2_4(modules[n].weight.detach().numpy()) for n in masks)
    with torch.no_grad():
        for n in masks:
            modules[n].weight.add_(0.01)  # an optimizer step
    MaskHolder(model, masks)()
    assert all(has_2_4(modules[n].weight.detach().numpy()) for n in masks)


def test_2_4_survives_onnx_export(det: tuple, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    model, _ = det
    apply_2_4(model, example_input=EXAMPLE)
    path = tmp_path / "sparse.onnx"
    torch.onnx.export(model, EXAMPLE, str(path), dynamo=False, opset_version=17)
    report = onnx_2_4_report(onnx.load(str(path)))
    assert report["conv_2_4"] > 40 and report["conv_dense"] <= 8  # the dense ones are the protected heads
    assert np.isfinite(report["conv_2_4"])


def test_distillation_pulls_the_student_to_the_teacher() -> None:
    from edgecv.zoo.training import distillation_loss

    g = torch.Generator().manual_seed(0)
    strides = torch.full((50, 1), 8.0)
    teacher = (torch.rand(2, 50, 4, generator=g) * 40, torch.randn(2, 50, 3, generator=g) * 3, None, strides)
    same = tuple(t.clone().requires_grad_(True) if t is not None and t is not strides else t for t in teacher)
    loss = distillation_loss(same, teacher, "detect")
    loss.backward()
    assert same[1].grad.abs().max() < 1e-6 and same[0].grad.abs().max() < 1.0  # a minimum in the logits (L1 has no gradient of 0)
    off = (teacher[0] + 8, teacher[1] - 2, None, strides)
    assert distillation_loss(off, teacher, "detect") > loss + 0.5
    logits = torch.randn(2, 5, 8, 8, generator=g)
    assert float(distillation_loss(logits, logits, "segment")) == pytest.approx(0.0, abs=1e-7)
    assert float(distillation_loss(logits.flip(1), logits, "segment")) > 0.01
