"""Tracking in the loop: `run --track`, `edgecv.stream(track=...)`, and a model loaded with track=True."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edgecv
from edgecv.cli import app
from edgecv.errors import ConfigError
from edgecv.track import ByteTrack, TrackConfig

runner = CliRunner()


def _reference_ids(det_onnx: Path, demo_video: Path, frames: int) -> list[list[int]]:
    """Track IDs from stepping one ByteTrack by hand over model(frame) on the same frames."""
    import cv2

    model = edgecv.load(det_onnx, track=True)
    cap = cv2.VideoCapture(str(demo_video))
    ids = []
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        ids.append(model(frame).tracker_id.tolist())
    cap.release()
    model.close()
    return ids


def test_run_track_writes_the_same_ids_as_a_hand_stepped_tracker(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "dets.jsonl"
    result = runner.invoke(app, ["run", str(det_onnx), "--source", str(demo_video), "--track", "--max-frames", "40", "--jsonl", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 20  # the whole (short) test video
    got = [[d["track_id"] for d in line["detections"]] for line in lines]
    assert got == _reference_ids(det_onnx, demo_video, len(lines))
    assert any(i > 0 for frame in got for i in frame), "no confirmed track in the demo video"


def test_stream_tracks_each_source_separately(det_onnx: Path, demo_video: Path) -> None:
    ids: dict[int, list[list[int]]] = {0: [], 1: []}
    with edgecv.load(det_onnx) as model, edgecv.stream(model, [demo_video, demo_video], max_frames=20, track=True) as stream:
        for fr in stream:
            ids[fr.source_index].append(fr.result.tracker_id.tolist())
    # two copies of one video, each with its own tracker: identical IDs (a shared tracker would differ)
    assert ids[0] == ids[1] == _reference_ids(det_onnx, demo_video, 20)


def test_model_loaded_with_track_tracks_in_a_stream(det_onnx: Path, demo_video: Path) -> None:
    with edgecv.load(det_onnx, track=TrackConfig(min_hits=1)) as model, edgecv.stream(model, demo_video, max_frames=5) as stream:
        results = [fr.result for fr in stream]
    assert all(r.tracker_id is not None for r in results)


def test_tracking_options_are_checked(det_onnx: Path, seg_onnx: Path, demo_video: Path) -> None:
    result = runner.invoke(app, ["run", str(det_onnx), "--track-buffer", "10", "--max-frames", "1"])
    assert result.exit_code == 2 and "--track-buffer need --track" in result.output
    with pytest.raises(ConfigError, match="track and tracker_factory"):
        edgecv.stream.StreamConfig(track=True, tracker_factory=ByteTrack)
    with edgecv.load(seg_onnx) as seg, pytest.raises(ConfigError, match="detection model"):
        edgecv.stream(seg, demo_video, track=True)
