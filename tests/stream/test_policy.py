"""The run's thread policy (edgecv.stream.policy): two frames in flight only for files on a multi-core CPU,
a given --threads kept as a budget, live sources one at a time; and `edgecv run` applying it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecv.cli import app
from edgecv.errors import ConfigError
from edgecv.stream.policy import ParallelismConfig, usable_cores


@pytest.mark.parametrize(
    ("kwargs", "inflight", "threads"),
    [
        ({"cpu_backend": True, "live": False, "cores": 2}, 2, 1),
        ({"cpu_backend": True, "live": False, "cores": 8}, 2, 4),
        ({"cpu_backend": True, "live": False, "cores": 1}, 1, None),
        ({"cpu_backend": True, "live": True, "cores": 8}, 1, None),  # a camera: latency first
        ({"cpu_backend": False, "live": False, "cores": 8}, 1, None),  # TensorRT / a GPU provider
        ({"cpu_backend": True, "live": False, "cores": 8, "threads": 3}, 1, 3),  # a thread budget is kept
        ({"cpu_backend": True, "live": True, "cores": 8, "inflight": 4}, 4, 2),  # asked for: honoured, cores split
        ({"cpu_backend": True, "live": False, "cores": 2, "inflight": 3}, 3, 1),
        ({"cpu_backend": True, "live": False, "cores": 8, "inflight": 2, "threads": 1}, 2, 1),
        ({"cpu_backend": False, "live": False, "cores": 8, "inflight": 2}, 2, None),
    ],
)
def test_choice(kwargs: dict, inflight: int, threads: int | None) -> None:
    plan = ParallelismConfig.choose(**kwargs)
    assert (plan.inflight, plan.threads) == (inflight, threads)
    assert plan.reason


def test_validated_and_usable_cores_follow_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="inflight"):
        ParallelismConfig(0, None, "")
    with pytest.raises(ConfigError, match="threads"):
        ParallelismConfig(1, 0, "")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cores() == 1
    assert ParallelismConfig.choose(cpu_backend=True, live=False).inflight == 1


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, ["run", *args])
    return result.output if result.exit_code == 0 else f"exit {result.exit_code}: {result.output}"


def test_run_applies_the_policy(det_onnx: Path, demo_video: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    base = (str(det_onnx), "--source", str(demo_video), "--max-frames", "6")
    assert "inference: 2 in flight, 1 thread(s) each" in _run(*base)
    assert "inference: one at a time (1 thread(s) as asked)" in _run(*base, "--threads", "1")
    assert "inference: one at a time (live source" in _run(*base, "--realtime")
    assert "inference: 3 in flight as asked" in _run(*base, "--inflight", "3", "--threads", "1")
    _run(*base, "--stats-json", str(tmp_path / "stats.json"))
    inference = json.loads((tmp_path / "stats.json").read_text())["inference"]
    assert inference == {"inflight": 2, "threads": 1, "reason": "2 in flight, 1 thread(s) each (2 cores, file source)"}
    bad = _run(*base, "--inflight", "0")
    assert bad.startswith("exit 2") and "--inflight must be at least 1" in bad


def test_source_kind_tells_live_sources_without_opening_them(tmp_path: Path, demo_video: Path) -> None:
    from edgecv.errors import SourceError
    from edgecv.stream.sources import LIVE_KINDS, source_kind

    (tmp_path / "frames").mkdir()
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not decoded here")
    kinds = {
        0: "camera", "3": "camera", "/dev/video2": "camera",
        "rtsp://10.0.0.5:8554/cam": "stream", "https://host/live": "stream", "https://host/clip.mp4": "remote-file",
        "v4l2src device=/dev/video0 ! videoconvert ! appsink": "gstreamer",
        str(demo_video): "video", str(tmp_path / "frames"): "folder", str(image): "image", str(tmp_path / "*.png"): "glob",
    }
    for spec, kind in kinds.items():
        assert source_kind(spec) == kind, spec
    assert {k for k in kinds.values() if k in LIVE_KINDS} == {"camera", "stream", "gstreamer"}
    with pytest.raises(SourceError, match="not found"):
        source_kind(str(tmp_path / "missing.mp4"))
