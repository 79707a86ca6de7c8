"""`edgecv run` with several sources: one batched loop, per-source outputs and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from typer.testing import CliRunner

from edgecv.cli import app
from edgecv.cli.run import output_paths

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _small_copy(video: Path, dest: Path, frames: int, size: tuple[int, int]) -> Path:
    cap = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    for _ in range(frames):
        ok, img = cap.read()
        assert ok
        writer.write(cv2.resize(img, size))
    cap.release()
    writer.release()
    return dest


def test_run_two_sources_writes_outputs_per_source(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    small = _small_copy(demo_video, tmp_path / "small.avi", 10, (320, 200))
    stats = tmp_path / "stats.json"
    result = invoke(
        "run", det_onnx, "--source", demo_video, "--source", small, "--batch-timeout-ms", "200",
        "--jsonl", tmp_path / "dets_{source}.jsonl", "--save", tmp_path / "a.avi", "--save", tmp_path / "b.avi",
        "--stats-json", stats,
    )
    assert result.exit_code == 0, result.output
    for i, n, size in ((0, 24, (640, 480)), (1, 10, (320, 200))):
        lines = [json.loads(x) for x in (tmp_path / f"dets_{i}.jsonl").read_text().splitlines()]
        assert [line["frame"] for line in lines] == list(range(n))
        cap = cv2.VideoCapture(str(tmp_path / ("a.avi", "b.avi")[i]))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
        assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == size
        cap.release()
    data = json.loads(stats.read_text())
    assert [s["frames"] for s in data["sources"]] == [24, 10]
    assert all(s["stop_reason"] == "end" and s["error"] is None for s in data["sources"])
    assert data["batching"]["frames"] == 34 and data["batching"]["mean_batch"] > 1
    assert "2 sources" in result.output


def test_several_sources_need_one_output_each(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    result = invoke("run", det_onnx, "--source", demo_video, "--source", demo_video, "--jsonl", tmp_path / "one.jsonl")
    assert result.exit_code == 2 and "--jsonl was given 1 time(s) for 2 source(s)" in result.output
    assert "{source}" in result.output and "Traceback" not in result.output
    bad = invoke("run", det_onnx, "--source", demo_video, "--source", demo_video, "--batch-timeout-ms", "-1")
    assert bad.exit_code == 2 and "batch_timeout_ms" in bad.output
    both = invoke("run", det_onnx, "--source", demo_video, "--camera", "0")
    assert both.exit_code == 2 and "exclusive" in both.output


def test_output_paths_placeholders(tmp_path: Path) -> None:
    specs = ["rtsp://user:pw@cam1.local/stream", str(tmp_path / "front.mp4")]
    paths = output_paths([tmp_path / "{name}.jsonl"], specs, "--jsonl")
    assert [p.name for p in paths] == ["cam1.local_stream.jsonl", "front.jsonl"]
    assert output_paths([tmp_path / "o_{source}.mp4"], specs, "--save") == [tmp_path / "o_0.mp4", tmp_path / "o_1.mp4"]
    assert output_paths([], specs, "--save") == [None, None]
    same = runner.invoke(app, ["run", "--source", "a.mp4", "--source", "b.mp4", "--save", str(tmp_path / "x.mp4"), "--save", str(tmp_path / "x.mp4")])
    assert same.exit_code == 2 and "several sources would write" in same.output


def test_batching_options_with_one_source_say_they_have_no_effect(det_onnx: Path, demo_video: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    with caplog.at_level(logging.WARNING):
        result = invoke("run", det_onnx, "--source", demo_video, "--max-frames", "2", "--max-batch", "2")
    assert result.exit_code == 0, result.output
    assert any("--max-batch" in r.getMessage() and "no effect" in r.getMessage() for r in caplog.records)
