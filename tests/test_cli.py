"""The CLI: exit codes, one-line errors with a fix hint, and the commands on the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecv.cli import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help() -> None:
    assert invoke("--version").stdout.startswith("edgecv ")
    result = invoke()
    assert "export" in result.stdout and "run" in result.stdout


def test_info_shows_metadata_and_io(det_onnx: Path) -> None:
    result = invoke("info", det_onnx, "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["task"] == "detect" and details["names"] == ["circle", "rectangle", "triangle", "star"]
    assert details["inputs"][0]["name"] == "images" and details["metadata"] == "edgecv metadata"
    table = invoke("info", det_onnx)
    assert table.exit_code == 0 and "yolov8" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("info", "missing.onnx"), 4, "model file not found"),
        (("run", "missing.onnx"), 4, "model file not found"),
        (("run", "--camera", "7", "--max-frames", "1"), 1, "camera 7"),
        (("run", "--source", "nope.mp4"), 1, "not found"),
        (("run", "--source", "a.mp4", "--camera", "0"), 2, "exclusive"),
        (("eval", "missing.onnx", "--data", "."), 1, ""),
        (("export", "no-such-model"), 4, "not found"),
    ],
)
def test_errors_are_one_line_with_a_fix(args: tuple[str, ...], code: int, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and message in result.output
    assert "fix:" in result.output or code == 1
    assert "Traceback" not in result.output


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_text("hello")
    result = invoke("info", bad)
    assert result.exit_code == 4 and "not a loadable ONNX model" in result.output and "fix:" in result.output


def test_unopenable_video(tmp_path: Path, det_onnx: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 1000)
    result = invoke("run", det_onnx, "--source", video)
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = invoke("--verbose", "info", tmp_path / "missing.onnx")
    assert result.exit_code == 4 and "Traceback" in result.output


def test_unwritable_output_path(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    result = invoke("run", det_onnx, "--source", demo_video, "--jsonl", tmp_path / "no" / "dir" / "x.jsonl")
    assert result.exit_code != 0 and "error:" in result.output and "Traceback" not in result.output


def test_run_writes_video_jsonl_and_stats(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    import cv2

    out_video, out_jsonl, stats = tmp_path / "out.avi", tmp_path / "dets.jsonl", tmp_path / "stats.json"
    result = invoke("run", det_onnx, "--source", demo_video, "--save", out_video, "--jsonl", out_jsonl, "--stats-json", stats, "--threads", "2")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(24))
    cap = cv2.VideoCapture(str(out_video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 480)
    summary = json.loads(stats.read_text())
    assert summary["frames"] == 24


def test_run_class_filter_and_max_frames(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    result = invoke("run", det_onnx, "--source", demo_video, "--jsonl", out, "--classes", "0", "--max-frames", "5")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    assert {d["class_id"] for line in lines for d in line["detections"]} <= {0}
    bad = invoke("run", det_onnx, "--source", demo_video, "--classes", "9")
    assert bad.exit_code == 2 and "out of range" in bad.output
    graph = invoke("run", det_onnx, "--source", demo_video, "--cuda-graph")
    assert graph.exit_code == 2 and "--cuda-graph applies to TensorRT engines" in graph.output


def test_shapes_command_writes_a_dataset(tmp_path: Path) -> None:
    result = invoke("shapes", tmp_path / "ds", "--images", "3")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "ds" / "images").iterdir())) == 3


def test_help_lists_every_command_in_pipeline_order() -> None:
    import re

    from edgecv.cli.app import PIPELINE_ORDER

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", result.output, flags=re.M)
    assert listed == list(PIPELINE_ORDER)
