from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from edgecv.engine import load_engine  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.export import ExportConfig, export_model  # noqa: E402
from edgecv.zoo.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from edgecv.zoo.registry import get_architecture  # noqa: E402


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = get_architecture("shapes-det").build(3, width=0.25).eval()
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    return save_checkpoint(model, path, arch="shapes-det", names=("a", "b", "c"), width=0.25)


def test_checkpoint_round_trip(small_ckpt: Path) -> None:
    model, info = load_checkpoint(small_ckpt)
    assert info["arch"] == "shapes-det" and info["names"] == ["a", "b", "c"]
    assert model.num_classes == 3 and not model.training


def test_export_writes_metadata_and_matches_torch(small_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.onnx"
    steps: list[int] = []
    report = export_model(small_ckpt, out, ExportConfig(exporter="torchscript"), progress=lambda d, t: steps.append(d))
    assert steps[-1] == 4 and report.max_abs_diff < 1e-3
    assert report.parity is not None and report.parity.images == 4 and report.parity.mean_abs_diff <= report.max_abs_diff
    assert report.meta.extra["parity"]["max_abs_diff"] == pytest.approx(report.max_abs_diff, abs=1e-8)  # stored rounded to 8 decimals
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx"]  # no temp files left
    with load_engine(out) as engine:
        meta = engine.meta
        assert (meta.task, meta.names, meta.arch, meta.dynamic) == ("detect", ("a", "b", "c"), "shapes-det", True)
        assert len(meta.source_hash) == 16
        assert meta.extra["dynamic_batch"] == {"min": 1, "opt": 1, "max": 16}
        for h, w in [(256, 256), (192, 256), (96, 320)]:
            y = next(iter(engine.infer({"images": np.zeros((1, 3, h, w), np.float32)}).values()))
            assert y.shape == (1, 7, sum((h // s) * (w // s) for s in (8, 16, 32)))


def test_static_export_and_bad_sizes(small_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "static.onnx"
    export_model(small_ckpt, out, ExportConfig(exporter="torchscript", dynamic=False, input_size=(160, 224)))
    with load_engine(out) as engine:
        assert engine.inputs[0].shape == (1, 3, 160, 224) and not engine.meta.dynamic
    with pytest.raises(ConfigError, match="not a multiple of the model stride"):
        export_model(small_ckpt, out, ExportConfig(input_size=(100, 100)))
    with pytest.raises(ConfigError, match="opset"):
        ExportConfig(opset=11)
    with pytest.raises(ConfigError, match="conflicts with --static"):
        ExportConfig(dynamic=False, batch_range=(1, 2, 4))
    with pytest.raises(ConfigError, match="MIN <= OPT <= MAX"):
        ExportConfig(batch_range=(4, 2, 8))
