"""`edgecv calibrate` end to end on the shipped models: outputs, gate, report, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")

import edgecv  # noqa: E402
from edgecv.engine.trt_cache import check_names, read_cache  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.quant.calibrate import CalibrateOptions, calibrate  # noqa: E402


@pytest.fixture(scope="module")
def calib_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecv.data.synthetic import write_coco_dataset

    out = tmp_path_factory.mktemp("calib")
    write_coco_dataset(out, 72, seed=5)
    return out


def test_detector_both_targets_with_gate(det_onnx: Path, calib_set: Path, tmp_path: Path) -> None:
    model = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    options = CalibrateOptions(num=48, holdout=24, target="both", max_drop=1.0, subset=12, bench_iterations=5)
    report = calibrate(model, calib_set, options)
    assert [t.target for t in report.targets] == ["tensorrt", "cpu"]
    assert report.metric == "mAP50-95" and report.data["labelled"] and report.data["holdout_images"] == 24
    for t in report.targets:
        assert t.path.is_file() and t.score is not None and t.score >= report.fp32_score - 1.0
        with edgecv.load(t.path) as loaded:
            assert loaded.meta.precision == "int8"
            info = loaded.meta.extra["int8"]
            assert info["target"] == t.target and info["kept_float_layers"] == t.kept_float_layers
            assert info["calibration_images"] == 48 and info["max_drop"] == 1.0
            frame = np.full((240, 320, 3), 90, np.uint8)
            assert loaded(frame).xyxy.shape[1] == 4
    # a graph takes the INT8 name only once the gate passed it (24 held-out images may be too few to decide)
    tags = {"passed": "", "failed": ".failed", "inconclusive": ".unverified"}
    named = {"tensorrt": "det.int8{}.onnx", "cpu": "det.int8.cpu{}.onnx"}
    assert all(t.path.name == named[t.target].format(tags[t.verdict]) for t in report.targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["det.calib", "det.int8.json", "det.onnx", *(t.path.name for t in report.targets)])
    import onnx

    from edgecv.graph.onnx_graph import tensor_names

    cache = read_cache(report.cache)
    check_names(cache, tensor_names(onnx.load(str(model)).graph))
    saved = json.loads(report.report_path.read_text())
    assert saved["accuracy"]["fp32"] == pytest.approx(report.fp32_score, abs=1e-3)
    assert {row["precision"] for row in saved["latency"]} == {"fp32", "int8"} and saved["latency"][2]["speedup"] > 0
    assert saved["layers"][0]["tensor"] == "images" and set(saved["layers"][0]["amax"]) == {"percentile"}


def test_gate_repairs_a_quantized_box_and_score_concat(det_onnx: Path, calib_set: Path, tmp_path: Path) -> None:
    """YOLOv8's output concatenates 0-256 px boxes and 0-1 scores: under one INT8 scale the scores are lost.

    Quantizing the tail (what a plain ``quantize_static`` does) wrecks mAP; the gate finds
    the concat by sensitivity and returns it (and whatever else it needs) to float.
    """
    model = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    options = CalibrateOptions(num=48, holdout=24, target="cpu", keep_tail=False, max_drop=2.0, subset=24, bench_iterations=0, cache=False)
    report = calibrate(model, calib_set, options)
    (result,) = report.targets
    assert result.plain_score is not None and result.plain_score < report.fp32_score - 8  # damaged
    assert result.score is not None and result.score >= report.fp32_score - 2.0  # repaired
    assert result.gate is not None and result.gate["passed"]
    most_sensitive = next(iter(result.gate["sensitivity"]))
    assert most_sensitive.startswith("node_cat") and most_sensitive in result.kept_float_layers


def test_segmenter_on_unlabelled_images_measures_agreement(seg_onnx: Path, calib_set: Path, tmp_path: Path) -> None:
    model = Path(shutil.copy(seg_onnx, tmp_path / "seg.onnx"))
    options = CalibrateOptions(num=24, holdout=8, method="all", bench_iterations=0, cache=False)
    report = calibrate(model, calib_set / "images", options)
    (result,) = report.targets
    assert report.metric == "mIoU vs FP32" and not report.data["labelled"]
    assert report.fp32_score == pytest.approx(100.0)
    assert set(result.method_scores) == {"entropy", "percentile", "minmax"}
    assert result.method == max(result.method_scores, key=result.method_scores.get)
    assert 90 < result.score <= 100


def test_refuses_int8_input_and_gate_without_holdout(det_onnx: Path, calib_set: Path, tmp_path: Path) -> None:
    model = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    with pytest.raises(ConfigError, match="--holdout is 0"):
        calibrate(model, calib_set, CalibrateOptions(num=8, holdout=0, max_drop=1))
    report = calibrate(model, calib_set, CalibrateOptions(num=8, holdout=0, bench_iterations=0))
    assert report.fp32_score is None and report.targets[0].score is None
    with pytest.raises(ConfigError, match="already has .* quantization nodes"):
        calibrate(report.targets[0].path, calib_set, CalibrateOptions(num=8))
    with pytest.raises(ConfigError, match="unknown --method"):
        CalibrateOptions(method="kl")


def test_cli_foreign_model_needs_imgsz_then_calibrates_from_video(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    import onnx
    from typer.testing import CliRunner

    from edgecv.cli import app

    foreign = onnx.load(str(det_onnx))
    del foreign.metadata_props[:]  # an ONNX from elsewhere: dynamic H/W, no size recorded
    path = tmp_path / "foreign.onnx"
    onnx.save(foreign, str(path))
    runner = CliRunner()
    result = runner.invoke(app, ["calibrate", str(path), str(demo_video), "--num", "8"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "dynamic input size" in text and "--imgsz" in text
    assert "Traceback" not in result.output
    args = ["calibrate", str(path), str(demo_video), "--imgsz", "256,320", "--num", "12", "--holdout", "4", "--every", "2", "--bench-iterations", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # Rich wraps at the terminal width
    assert "agreement with the FP32 model" in text and (tmp_path / "foreign.int8.onnx").is_file()
    with edgecv.load(tmp_path / "foreign.int8.onnx") as loaded:
        assert loaded.meta.input_size == (256, 320) and loaded.meta.extra["int8"]["metric"] == "mAP50-95 vs FP32"
    again = runner.invoke(app, ["calibrate", str(tmp_path / "foreign.int8.onnx"), str(demo_video)])
    assert again.exit_code == 2 and "quantization nodes" in again.output


def _tail_builders(det_onnx: Path, calib_set: Path) -> tuple[Any, Any, Any]:
    """(calibration/held-out split, builder of the CPU INT8 graph with its output tail quantized
    ("crushed": one scale over boxes and scores), builder of the same graph with the tail kept float)."""
    from edgecv.export.convert import read_meta
    from edgecv.graph.onnx_graph import load_onnx
    from edgecv.quant import calib_data, qdq
    from edgecv.quant.collect import collect_stats
    from edgecv.quant.gate import ModelBuilder

    meta = read_meta(det_onnx)
    prepared = qdq.prepare(load_onnx(det_onnx))
    images = calib_data.gather(calib_set / "images", num=48, holdout=24, seed=0)
    stats, _ = collect_stats(prepared, calib_data.tensors(images.calibration, meta, []))
    ranges = qdq.tensor_ranges(stats, qdq.amaxes(stats, "percentile"), symmetric=False)
    int8 = meta.replace(precision="int8")
    crushed = ModelBuilder(lambda keep: qdq.quantize(prepared, ranges, target="cpu", keep_tail=False)[0], int8)
    kept = ModelBuilder(lambda keep: qdq.quantize(prepared, ranges, target="cpu", keep_tail=True)[0], int8)
    return images, crushed, kept


def test_quantized_tail_fails_at_the_operating_point_though_the_map_limit_holds(det_onnx: Path, calib_set: Path) -> None:
    """The shipped detector with its tail quantized (CPU target): one UINT8 scale over 0-256 px boxes and 0-1 scores.

    A limit on mAP alone (the old gate) passes it when the limit is just above its drop; at
    conf 0.25 it loses FP32's detections, and the gate now says so.
    """
    from edgecv.quant.gate import GateLimits, HeldOut

    images, crushed, kept = _tail_builders(det_onnx, calib_set)
    try:
        held = HeldOut(images.holdout, det_onnx)
        assert held.fp32.score == pytest.approx(100.0) and held.fp32.fidelity["recall"] == 1.0
        plain = held.evaluate(crushed([]))
        drop = held.fp32.score - plain.score
        map_only = GateLimits(max_drop=drop + 0.5, min_recall=0, min_precision=0, max_score_drop=1)
        assert plain.passes(map_only, "detect", held.fp32.score)
        gate = GateLimits(max_drop=drop + 0.5)
        assert not plain.passes(gate, "detect", held.fp32.score)
        assert plain.fidelity["recall"] < 0.95 or plain.fidelity["mean_score_change"] < -0.05
        assert plain.fidelity["matched"] < plain.fidelity["reference"]  # detections lost at conf 0.25
        good = held.evaluate(kept([]))  # the tail float: what edgecv does by default
        assert good.fidelity["recall"] > plain.fidelity["recall"]
        assert good.fidelity["mean_iou"] > 0.9
    finally:
        crushed.close()
        kept.close()


def test_cli_refuses_to_pass_on_too_few_held_out_images(det_onnx: Path, calib_set: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgecv.cli import app

    model = Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))
    args = [
        "calibrate", str(model), str(calib_set / "images"), "--num", "24", "--holdout", "8", "--bench-iterations", "0", "--no-cache",
        "--max-drop", "60", "--min-recall", "0.5", "--min-precision", "0.5", "--max-score-drop", "0.5",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "not enough held-out data" in text and "--val" in text and "--every" in text and "more held-out images" in text
    assert "Traceback" not in result.output
    saved = json.loads((tmp_path / "det.int8.json").read_text())
    target = saved["targets"][0]
    assert target["verdict"] == "inconclusive" and not target["uncertainty"]["sufficient"]
    assert target["uncertainty"]["images"] == 8 and set(target["uncertainty"]["intervals"]) >= {"drop", "recall", "precision"}
    # an unproven graph never takes the model's INT8 name: a good det.int8.onnx from an earlier run would stay
    assert not (tmp_path / "det.int8.onnx").exists()
    assert target["path"].endswith("det.int8.unverified.onnx") and "det.int8.unverified.onnx" in text
    with edgecv.load(tmp_path / "det.int8.unverified.onnx") as loaded:
        assert loaded.meta.extra["int8"]["gate"]["verdict"] == "inconclusive"


def test_trial_evaluation_reuses_images_and_stops_only_on_certain_failure(det_onnx: Path, calib_set: Path) -> None:
    """A trial's subset results are the first images of its full evaluation (same figures as a fresh
    one); an evaluation stopped early is one the complete evaluation fails; one that can pass is complete."""
    from edgecv.quant.gate import GateLimits, HeldOut, Scored

    images, crushed, kept = _tail_builders(det_onnx, calib_set)
    try:
        held = HeldOut(images.holdout, det_onnx)
        gate = GateLimits()
        bad = held.evaluate(crushed([]))
        assert bad is not None and not bad.passes(gate, "detect", held.fp32.score)
        scored = Scored(crushed([]))
        assert held.evaluate(crushed([]), stop=gate, cache=scored) is None
        assert 0 < len(scored) < len(held)  # stopped before the last image
        assert held.evaluate(crushed([]), stop=gate, cache=scored) is None  # and stays stopped
        rest = held.evaluate(crushed([]), cache=scored)  # completed without stop: what a fresh evaluation gives
        assert rest is not None and (rest.score, rest.fidelity) == (bad.score, bad.fidelity)

        lenient = GateLimits(min_recall=0.5, min_precision=0.5, max_score_drop=0.5)
        fresh = held.evaluate(kept([]))
        assert fresh is not None and fresh.passes(lenient, "detect", held.fp32.score)
        scored = Scored(kept([]))
        part = held.evaluate(kept([]), limit=10, stop=lenient, cache=scored)
        assert part is not None and part.images == 10 and len(scored) == 10
        full = held.evaluate(kept([]), stop=lenient, cache=scored)
        assert full is not None and full.images == len(held)
        assert (full.score, full.fidelity) == (fresh.score, fresh.fidelity)
        assert held.uncertainty(full, lenient) == held.uncertainty(fresh, lenient)
    finally:
        crushed.close()
        kept.close()
