"""The parity check's task-level gate (`--tolerance`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edgecv import assets  # noqa: E402
from edgecv.artifact import ModelMeta  # noqa: E402
from edgecv.errors import ConfigError, ExportError  # noqa: E402
from edgecv.export.onnx_export import ExportConfig, parity_check  # noqa: E402
from edgecv.zoo.checkpoint import load_checkpoint  # noqa: E402


def test_task_level_disagreement_fails_even_within_atol() -> None:
    import onnxruntime as ort

    onnx_path = assets.shipped("shapes-det")
    meta = ModelMeta.from_props(dict(ort.InferenceSession(str(onnx_path)).get_modelmeta().custom_metadata_map))
    model, _ = load_checkpoint(assets.shipped("shapes-det", ".pt"))
    loose = ExportConfig(atol=1e9, rtol=0.0)
    assert parity_check(model, onnx_path, meta, loose).agreement == 1.0
    with torch.no_grad():
        for head in model.heads:  # PyTorch now calls every object a circle
            head.cls[-1].bias[0] += 20.0
    assert parity_check(model, onnx_path, meta, ExportConfig(atol=1e9, rtol=0.0, tolerance=0.0)).agreement < 0.5
    with pytest.raises(ExportError, match=r"agree on only .*\(--tolerance 99.00%\)"):
        parity_check(model, onnx_path, meta, loose)
    with pytest.raises(ConfigError, match="--tolerance"):
        ExportConfig(tolerance=1.5)
