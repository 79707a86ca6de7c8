"""Adopting Ultralytics-layout ONNX files built in the test itself (no ultralytics dependency)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecv.cli import app

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

runner = CliRunner()
ULTRALYTICS_PROPS = {"names": "{0: 'circle', 1: 'rectangle', 2: 'triangle', 3: 'star'}", "stride": "32", "imgsz": "[256, 256]"}


def _foreign(det_onnx: Path, out: Path, *, yolov5: bool) -> Path:
    """The shipped detector as another exporter would leave it: no edgecv metadata, Ultralytics' instead."""
    model = onnx.load(str(det_onnx))
    del model.metadata_props[:]
    for key, value in ULTRALYTICS_PROPS.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if yolov5:  # (B, 4 + nc, A) -> (B, A, 4 + 1 + nc) with objectness 1
        graph = model.graph
        for node in graph.node:
            node.output[:] = ["raw" if o == "output0" else o for o in node.output]
        graph.initializer.extend(
            [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("s0", [0]), ("s4", [4]), ("s1", [1]), ("big", [1 << 30]), ("ax", [2]))]
            + [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(1), "one")]
        )
        graph.node.extend(
            [
                helper.make_node("Transpose", ["raw"], ["t"], perm=[0, 2, 1]),
                helper.make_node("Slice", ["t", "s0", "s4", "ax"], ["boxes"]),
                helper.make_node("Slice", ["t", "s4", "big", "ax"], ["cls"]),
                helper.make_node("Slice", ["t", "s0", "s1", "ax"], ["first"]),
                helper.make_node("Mul", ["first", "zero"], ["z"]),
                helper.make_node("Add", ["z", "one"], ["obj"]),
                helper.make_node("Concat", ["boxes", "obj", "cls"], ["output0"], axis=2),
            ]
        )
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", "anchors", 9]))
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("yolov5", [False, True], ids=["yolov8", "yolov5"])
def test_adopt_then_info_run_and_eval(det_onnx: Path, shapes_val: Path, demo_video: Path, tmp_path: Path, yolov5: bool) -> None:
    foreign = _foreign(det_onnx, tmp_path / "foreign.onnx", yolov5=yolov5)
    info = runner.invoke(app, ["info", str(foreign), "--json"])
    assert info.exit_code == 0, info.output
    details = json.loads(info.stdout)
    assert details["output_format"] == ("yolov5" if yolov5 else "yolov8") and "no edgecv metadata" in details["metadata"]
    assert details["names"] == ["circle", "rectangle", "triangle", "star"]  # from Ultralytics' metadata

    adopted = tmp_path / "adopted.onnx"
    result = runner.invoke(app, ["export", str(foreign), "-o", str(adopted)])
    assert result.exit_code == 0, result.output
    assert ("YOLOv5" if yolov5 else "YOLOv8") in result.output and "identical" in result.output
    details = json.loads(runner.invoke(app, ["info", str(adopted), "--json"]).stdout)
    assert details["metadata"] == "edgecv metadata" and details["extra"]["adopted_from"] == "foreign.onnx"

    jsonl = tmp_path / "d.jsonl"
    assert runner.invoke(app, ["run", str(adopted), "--source", str(demo_video), "--jsonl", str(jsonl)]).exit_code == 0
    reference = tmp_path / "ref.jsonl"
    assert runner.invoke(app, ["run", str(det_onnx), "--source", str(demo_video), "--jsonl", str(reference)]).exit_code == 0
    strip = lambda p: [json.loads(line)["detections"] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(jsonl) == strip(reference)

    scores = {}
    for name, path in (("adopted", adopted), ("shipped", det_onnx)):
        out = tmp_path / f"{name}.json"
        assert runner.invoke(app, ["eval", str(path), "--data", str(shapes_val), "--json", str(out)]).exit_code == 0
        scores[name] = json.loads(out.read_text())["map"]
    assert scores["adopted"] == pytest.approx(scores["shipped"], abs=1e-9)


def test_adopting_an_unknown_layout_fails_clearly(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 192])  # a classifier-like output
    model = helper.make_model(helper.make_graph([helper.make_node("Flatten", ["x"], ["y"])], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 4 and "not a layout edgecv knows" in result.output


def test_nms_in_graph_from_the_cli_matches_host_nms(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    with_nms = tmp_path / "det.nms.onnx"
    result = runner.invoke(app, ["export", str(det_onnx), "--nms", "onnx", "--nms-conf", "0.25", "--nms-iou", "0.45", "-o", str(with_nms)])
    assert result.exit_code == 0, result.output
    assert "NMS in the graph (onnx)" in result.output
    details = json.loads(runner.invoke(app, ["info", str(with_nms), "--json"]).stdout)
    assert details["output_format"] == "nms" and details["nms_in_graph"] and [o["name"] for o in details["outputs"]] == ["num_dets", "boxes", "scores", "classes"]
    runs = {}
    for name, path in (("graph", with_nms), ("host", det_onnx)):
        jsonl = tmp_path / f"{name}.jsonl"
        assert runner.invoke(app, ["run", str(path), "--source", str(demo_video), "--jsonl", str(jsonl)]).exit_code == 0
        runs[name] = [json.loads(line)["detections"] for line in jsonl.read_text().splitlines()]
    assert runs["graph"] == runs["host"]


def test_efficient_nms_is_tensorrt_only_and_says_so(det_onnx: Path, tmp_path: Path) -> None:
    trt_only = tmp_path / "det.trt.onnx"
    result = runner.invoke(app, ["export", str(det_onnx), "--nms", "efficient", "-o", str(trt_only)])
    assert result.exit_code == 0, result.output
    assert "TensorRT only" in result.output
    result = runner.invoke(app, ["run", str(trt_only), "--max-frames", "1"])
    assert result.exit_code == 4 and "EfficientNMS_TRT" in result.output and "--nms onnx" in result.output
    bad = runner.invoke(app, ["export", str(det_onnx), "--nms", "efficent"])
    assert bad.exit_code == 2 and "did you mean 'efficient'" in bad.output
