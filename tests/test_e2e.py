"""End to end through the CLI: export the shipped checkpoint -> run on a video -> JSONL matches truth -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecv import assets
from edgecv.cli import app
from edgecv.data.synthetic import ground_truth_path

pytest.importorskip("torch")
runner = CliRunner()


def box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_export_run_eval(tmp_path: Path, demo_video: Path, shapes_val: Path) -> None:
    onnx_path = tmp_path / "det.onnx"
    result = runner.invoke(app, ["export", str(assets.shipped("shapes-det", ".pt")), "-o", str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert "parity vs PyTorch: max abs diff" in result.output
    assert "detections matched (IoU >= 0.9, same class): 100.00%" in result.output.replace("\n", " ")

    jsonl = tmp_path / "dets.jsonl"
    result = runner.invoke(app, ["run", str(onnx_path), "--source", str(demo_video), "--jsonl", str(jsonl), "--conf", "0.4"])
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    truth = json.loads(ground_truth_path(demo_video).read_text())["frames"]
    assert len(frames) == len(truth)
    matched = total = 0
    for got, want in zip(frames, truth):
        for obj in want["objects"]:
            total += 1
            best = max((box_iou(obj["box"], d["box"]) for d in got["detections"] if d["class_id"] == obj["class_id"]), default=0)
            matched += best > 0.7
    assert matched / total > 0.9, f"{matched}/{total} ground-truth objects found"

    metrics = tmp_path / "metrics.json"
    result = runner.invoke(app, ["eval", str(onnx_path), "--data", str(shapes_val), "--json", str(metrics)])
    assert result.exit_code == 0, result.output
    scores = json.loads(metrics.read_text())
    assert scores["map50"] > 0.85 and scores["map"] > 0.55


@pytest.mark.slow
def test_export_segmenter_from_state_dict_and_bad_weights(tmp_path: Path, shapes_val: Path) -> None:
    torch = pytest.importorskip("torch")
    payload = torch.load(assets.shipped("shapes-seg", ".pt"), weights_only=True)
    plain = tmp_path / "seg_state.pt"
    torch.save(payload["state_dict"], plain)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(payload["names"]))
    out = tmp_path / "seg.onnx"
    result = runner.invoke(
        app,
        ["export", str(plain), "--arch", "shapes-seg", "--width", "0.75", "--names", str(names), "-o", str(out), "--exporter", "torchscript"],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(out), "--data", str(shapes_val), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["miou"] > 0.8

    # mismatched keys: a detector's weights given as a segmenter
    det = torch.load(assets.shipped("shapes-det", ".pt"), weights_only=True)["state_dict"]
    wrong = tmp_path / "wrong.pt"
    torch.save(det, wrong)
    result = runner.invoke(app, ["export", str(wrong), "--arch", "shapes-seg", "--width", "0.75", "--num-classes", "5"])
    assert result.exit_code == 1 and "do not fit the architecture" in result.output and "missing:" in result.output


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    evil = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), evil)
    result = runner.invoke(app, ["export", str(evil)])
    assert result.exit_code == 4 and "weights-only" in result.output and "Traceback" not in result.output
    np.testing.assert_equal(evil.exists(), True)
