"""`edgecv convert` and the graph-edit flags: FP16, preprocessing and NMS inside the graph, chained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecv.cli import app

pytest.importorskip("onnx")
runner = CliRunner()


def _eval(model: Path, data: Path, out: Path) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["eval", str(model), "--data", str(data), "--json", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_fp16_keeps_accuracy(det_onnx: Path, seg_onnx: Path, shapes_val: Path, tmp_path: Path) -> None:
    for src, metric in ((det_onnx, "map"), (seg_onnx, "miou")):
        fp16 = tmp_path / f"{src.stem}.fp16.onnx"
        result = runner.invoke(app, ["convert", str(src), "--fp16", "-o", str(fp16)])
        assert result.exit_code == 0, result.output
        assert "(fp16)" in result.output and "kept FP32" in result.output
        info = json.loads(runner.invoke(app, ["info", str(fp16), "--json"]).stdout)
        assert info["precision"] == "fp16" and info["inputs"][0]["dtype"] == "float32"
        ref = _eval(src, shapes_val, tmp_path / "ref.json")[metric]
        got = _eval(fp16, shapes_val, tmp_path / "fp16.json")[metric]
        assert abs(got - ref) <= 0.003, (metric, ref, got)  # the goal: within 0.3 points


def test_all_edits_chained_still_detect_the_same_objects(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    edited = tmp_path / "det.all.onnx"
    result = runner.invoke(app, ["convert", str(det_onnx), "--preprocess-in-graph", "--nms", "onnx", "--fp16", "-o", str(edited)])
    assert result.exit_code == 0, result.output
    assert "NMS in the graph" in result.output and "preprocessing in the graph" in result.output
    info = json.loads(runner.invoke(app, ["info", str(edited), "--json"]).stdout)
    assert info["inputs"][0]["dtype"] == "uint8" and info["inputs"][0]["shape"][3] == 3
    frames = {}
    for name, path in (("edited", edited), ("raw", det_onnx)):
        jsonl = tmp_path / f"{name}.jsonl"
        assert runner.invoke(app, ["run", str(path), "--source", str(demo_video), "--jsonl", str(jsonl)]).exit_code == 0
        frames[name] = [json.loads(line)["detections"] for line in jsonl.read_text().splitlines()]
    for got, want in zip(frames["edited"], frames["raw"]):
        confident = [d for d in want if d["score"] > 0.35]  # FP16 may move scores near the threshold
        for d in confident:
            match = [g for g in got if g["class_id"] == d["class_id"] and np.abs(np.subtract(g["box"], d["box"])).max() < 1.0]
            assert match, (d, got)


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "nothing to convert"), (("--nms", "onnx"), "applies to detectors")],
)
def test_convert_refuses_what_it_cannot_do(seg_onnx: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = runner.invoke(app, ["convert", str(seg_onnx), *args, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x.onnx").exists()
