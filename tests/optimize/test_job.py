"""`edgecv prune` end to end: measured report, rebuildable outputs, and the export -> calibrate -> convert -> run chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("onnx")

import edgecv  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.optimize.job import PruneOptions, run_prune  # noqa: E402

QUICK = dict(finetune_pool=32, val_images=8, bench_iterations=3, exporter="torchscript")


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("pruned") / "det.pruned.pt"
    return run_prune("shapes-det", PruneOptions(ratio=0.3, sparsity="2:4", finetune_epochs=1, **QUICK), output=out)


def test_report_measures_every_stage(pruned) -> None:  # type: ignore[no-untyped-def]
    names = [s.name for s in pruned.stages]
    assert names == ["original", "pruned + 2:4", "fine-tuned"]
    original, after, tuned = pruned.stages
    assert after.params < original.params and after.macs < 0.6 * original.macs and tuned.macs == after.macs
    assert original.speedup == 1.0 and tuned.speedup is not None and tuned.infer_ms > 0
    assert pruned.metric == "mAP50-95" and original.score > 50 and tuned.score is not None
    assert pruned.sparsity["conv_2_4"] > 20 and pruned.sparsity["pattern"] == "2:4"  # held through fine-tuning and export
    saved = json.loads(pruned.report_path.read_text())
    assert [s["name"] for s in saved["stages"]] == names and saved["options"]["ratio"] == 0.3


def test_pruned_model_runs_calibrates_and_converts(pruned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgecv.export.convert import convert_onnx
    from edgecv.quant.calibrate import CalibrateOptions, calibrate
    from edgecv.zoo.checkpoint import load_checkpoint

    model, info = load_checkpoint(pruned.checkpoint)  # rebuilt from the structure, weights_only
    assert info["structure"]["c2f_split"]
    frame = np.full((240, 320, 3), 100, np.uint8)
    with edgecv.load(pruned.onnx) as loaded:
        assert loaded.meta.arch == "shapes-det" and loaded(frame).xyxy.shape[1] == 4
    from edgecv.data.synthetic import write_coco_dataset

    data = write_coco_dataset(tmp_path / "calib", 12, seed=3).parent
    report = calibrate(pruned.onnx, data, CalibrateOptions(num=8, holdout=4, bench_iterations=0, cache=False), output=tmp_path / "p.int8.onnx")
    assert report.targets[0].score is not None
    meta = convert_onnx(pruned.onnx, tmp_path / "p.fp16.onnx", fp16=True)
    assert meta.precision == "fp16"
    with edgecv.load(tmp_path / "p.fp16.onnx") as fp16, edgecv.load(tmp_path / "p.int8.onnx") as int8:
        assert fp16(frame).xyxy.shape[1] == 4 and int8(frame).xyxy.shape[1] == 4


def test_latency_aware_search_reports_its_curve(tmp_path: Path) -> None:
    report = run_prune(
        "shapes-det",
        PruneOptions(target_speedup=50.0, step=0.1, max_ratio=0.2, finetune_epochs=0, **QUICK),  # unreachable: walks the whole range
        output=tmp_path / "s.pt",
    )
    assert [round(s.ratio, 2) for s in report.curve] == [0.1, 0.2]
    assert all(s.speedup is not None and s.score is not None for s in report.curve)
    assert report.stages[-1].ratio in (0.1, 0.2) and len(report.stages) == 2


def test_options_and_inputs_that_cannot_be_pruned(tmp_path: Path, det_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to do"):
        PruneOptions()
    with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
        PruneOptions(ratio=1.2)
    with pytest.raises(ConfigError, match="both choose"):
        PruneOptions(ratio=0.2, target_speedup=1.3)
    with pytest.raises(ConfigError, match="prune before export"):
        run_prune(det_onnx, PruneOptions(ratio=0.2))
    from typer.testing import CliRunner

    from edgecv.cli import app

    result = CliRunner().invoke(app, ["prune", str(det_onnx), "--ratio", "0.2"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "prune before export" in text and "Traceback" not in text
    result = CliRunner().invoke(app, ["prune", "shapes-det", "--ratio", "1.5"])
    assert result.exit_code == 2 and "(0, 1)" in result.output
