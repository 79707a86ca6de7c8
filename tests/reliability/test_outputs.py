"""Outputs in-process, with injected faults (no mount needed): ENOSPC, a silent writer, stale temps, fsync."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from faults import decodable_frames

import edgecv.artifact as artifact
import edgecv.stream.sinks as sinks
from edgecv.artifact import atomic_output, atomic_write_bytes, check_writable, clean_stale_temps
from edgecv.errors import ConfigError, OutputError, SinkError
from edgecv.results import Detections, FrameResult, StageTimings


def _result(i: int) -> FrameResult:
    det = Detections(np.array([[i, 2, i + 4, 9]], np.float32), np.array([0.5], np.float32), np.array([0], np.int32), ("x",))
    return FrameResult(i, 1000.0 + i, det, StageTimings(1, 2, 3, 4, 5))


def _frame(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)


def test_video_stops_and_finalizes_before_the_disk_is_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free = {"bytes": 50_000_000}
    monkeypatch.setattr(sinks, "free_bytes", lambda folder: free["bytes"])
    sink = sinks.VideoSink(tmp_path / "out.avi", fps=30)
    for i in range(10):
        sink.write(_frame(i), _result(i))
    free["bytes"] = 100_000  # below the reserve: the next frame stops the recording
    with pytest.raises(SinkError, match=r"stopped recording .*out.avi after 11 frames: the disk is almost full") as info:
        sink.write(_frame(10), _result(10))
    assert "all 11 frames are saved in" in info.value.message
    assert decodable_frames(tmp_path / "out.avi") == 11
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]
    sink.close()  # idempotent after the failure


def test_video_that_fails_its_check_is_kept_as_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out.avi").write_bytes(b"the good old recording")
    monkeypatch.setattr(sinks, "_count_frames", lambda path: 3)  # the writer silently lost frames
    sink = sinks.VideoSink(tmp_path / "out.avi", fps=30)
    for i in range(8):
        sink.write(_frame(i), _result(i))
    with pytest.raises(SinkError, match=r"3 of 8 frames are readable; kept as .*out.partial.avi"):
        sink.close()
    assert (tmp_path / "out.avi").read_bytes() == b"the good old recording"  # never replaced by a bad file
    assert (tmp_path / "out.partial.avi").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if ".edgecv-tmp-" in p.name]


def test_video_with_nothing_playable_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "_count_frames", lambda path: 0)
    sink = sinks.VideoSink(tmp_path / "out.mp4", fps=30)
    sink.write(_frame(0), _result(0))
    with pytest.raises(SinkError, match="holds no playable frame"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_video_writer_that_fails_silently_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "STALL_FRAMES", 5)
    sink = sinks.VideoSink(tmp_path / "out.avi", fps=30)
    sink.write(_frame(0), _result(0))

    class Silent:  # what OpenCV's writer does on a failing disk: accepts frames, writes nothing
        def write(self, frame: np.ndarray) -> None: ...

        def release(self) -> None: ...

    sink._writer = Silent()
    with pytest.raises(SinkError, match="has not grown for 5 frames"):
        for i in range(1, 20):
            sink.write(_frame(i), _result(i))


def test_video_refuses_to_start_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "free_bytes", lambda folder: 10_000)
    with pytest.raises(SinkError, match="MB free"):
        sinks.VideoSink(tmp_path / "out.mp4", fps=30)
    assert list(tmp_path.iterdir()) == []


class _FullDisk:
    """A text file whose writes fail with ENOSPC after ``room`` characters (part of a line gets through)."""

    def __init__(self, real, room: int) -> None:  # type: ignore[no-untyped-def]
        self.real, self.room = real, room

    def write(self, text: str) -> int:
        if len(text) > self.room:
            self.real.write(text[: self.room])
            self.real.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        return self.real.write(text)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)


def test_jsonl_on_a_full_disk_keeps_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = sinks.JsonlSink(path)
    sink.write(None, _result(0))
    sink._file = _FullDisk(sink._file, room=len(path.read_text()) + 30)
    sink.write(None, _result(1))
    with pytest.raises(SinkError, match=r"No space left on device; it holds the 2 complete lines"):
        sink.write(None, _result(2))
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1]


def test_jsonl_is_not_truncated_until_the_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("old\n")
    sink = sinks.JsonlSink(path)
    sink.close()  # a run that never processed a frame
    assert path.read_text() == "old\n"


def test_atomic_output_fsyncs_file_and_folder_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []
    real = artifact.fsync_path

    def spy(path: Path, *, directory: bool = False) -> None:
        calls.append((Path(path).name, directory, (tmp_path / "m.onnx").exists()))  # type: ignore[arg-type]
        real(path, directory=directory)

    monkeypatch.setattr(artifact, "fsync_path", spy)
    atomic_write_bytes(tmp_path / "m.onnx", b"model")
    assert calls[0][1] is False and calls[0][0].startswith(".m.onnx.edgecv-tmp-") and calls[0][2] is False  # file, before rename
    assert calls[1] == (tmp_path.name, True, True)  # folder, after rename


def test_atomic_output_keeps_old_file_when_sync_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"good")

    def failing(path: Path, *, directory: bool = False) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(artifact, "fsync_path", failing)
    with pytest.raises(OutputError, match="Input/output error"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_enospc_while_writing_is_an_output_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"good")
    with pytest.raises(OutputError, match="No space left"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_stale_temps_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".out.mp4.edgecv-tmp-999999999-abc.mp4"
    alive = tmp_path / f".out.mp4.edgecv-tmp-{os.getpid()}-def.mp4"
    other = tmp_path / ".hidden-of-someone-else.tmp"
    for p in (dead, alive, other):
        p.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def test_check_writable(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "a.json") == tmp_path / "a.json"
    assert list(tmp_path.iterdir()) == []  # the probe is gone
    with pytest.raises(ConfigError, match="does not exist"):
        check_writable(tmp_path / "no" / "a.json")
    with pytest.raises(ConfigError, match="is a folder"):
        check_writable(tmp_path)
