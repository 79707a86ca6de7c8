"""Sinks: finalized videos, line-complete JSONL, clear errors for windows and bad paths."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from streamkit import count_frames, index_frame

from edgecv.errors import ConfigError, SinkError
from edgecv.results import Detections, FrameResult, StageTimings
from edgecv.stream.sinks import CallbackSink, JsonlSink, VideoSink, WindowSink, gui_problem


def _result(i: int) -> FrameResult:
    det = Detections(
        np.array([[i, 2, i + 4, 9]], np.float32), np.array([0.5], np.float32), np.array([0], np.int32), ("thing",)
    )
    return FrameResult(i, 1000.0 + i, det, StageTimings(1, 2, 3, 4, 5))


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_video_sink_writes_playable_file_on_close(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    sink = VideoSink(path, fps=25, size=(64, 48))
    for i in range(12):
        sink.write(index_frame(i), _result(i))
        assert not path.exists()  # recorded into a temp file beside it
    sink.close()
    sink.close()  # idempotent
    n, size, indices = count_frames(path)
    assert (n, size) == (12, (64, 48))
    if suffix == ".avi":
        assert indices == list(range(12))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_video_sink_lazy_size_and_resize(tmp_path: Path) -> None:
    path = tmp_path / "lazy.avi"
    with VideoSink(path) as sink:  # fps unknown -> 30, size from the first frame
        assert sink.fps == 30.0 and sink.size is None
        sink.write(index_frame(1, (80, 60)), _result(1))
        sink.write(index_frame(2, (64, 48)), _result(2))  # resized to 80x60
        sink.write(index_frame(3, (80, 60))[:, :, 0], _result(3))  # grey -> BGR
    assert count_frames(path)[:2] == (3, (80, 60))


def test_video_sink_without_frames_leaves_nothing(tmp_path: Path) -> None:
    VideoSink(tmp_path / "none.mp4", fps=30, size=(64, 48)).close()
    assert list(tmp_path.iterdir()) == []


def test_video_sink_unwritable_paths(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "out.mp4"
    with pytest.raises(SinkError, match="out.mp4") as info:
        VideoSink(missing, fps=30, size=(64, 48))
    assert "mkdir" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="unknown suffix"):
        VideoSink(tmp_path / "out.xyz", fps=30)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(SinkError, match="cannot write video"):
                VideoSink(ro / "out.avi", fps=30)
        finally:
            ro.chmod(0o700)


def test_video_sink_write_after_close(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "x.avi", fps=30, size=(64, 48))
    sink.write(index_frame(0), _result(0))
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write(index_frame(1), _result(1))


def test_jsonl_lines_are_complete_before_close(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path)
    assert sink.needs_image is False
    for i in range(5):
        sink.write(None, _result(i))
    lines = path.read_text().splitlines()  # read while still open: flushed per line
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert first["frame"] == 0 and first["timings_ms"]["infer"] == 3 and first["detections"][0]["class_name"] == "thing"
    assert [json.loads(line)["detections"][0]["box"][0] for line in lines] == [0, 1, 2, 3, 4]
    sink.close()
    sink.close()
    with JsonlSink(path, append=True) as again:
        again.write(None, _result(5))
    assert len(path.read_text().splitlines()) == 6


def test_jsonl_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="does not exist") as info:
        JsonlSink(tmp_path / "missing" / "r.jsonl")
    assert "mkdir" in (info.value.hint or "")


def test_window_sink_without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("display variables are a Linux thing")
    with pytest.raises(SinkError, match="no display") as info:
        WindowSink()
    assert "--save" in (info.value.hint or "")


def test_window_sink_on_headless_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    if gui_problem() is None:
        pytest.skip("this OpenCV has a GUI")
    with pytest.raises(SinkError, match="no GUI support") as info:
        WindowSink()
    assert "pip install opencv-python" in (info.value.hint or "")


def test_callback_sink() -> None:
    seen: list[tuple[int, object]] = []
    sink = CallbackSink(lambda r: seen.append((r.index, None)))
    assert not sink.needs_image
    sink.write(None, _result(3))
    with_img = CallbackSink(lambda r, img: seen.append((r.index, img.shape)), with_image=True)
    assert with_img.needs_image
    with_img.write(index_frame(4), _result(4))
    assert seen == [(3, None), (4, (48, 64, 3))]
    with pytest.raises(ConfigError):
        CallbackSink(42)  # type: ignore[arg-type]
