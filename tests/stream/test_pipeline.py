"""The run loop: counts, outputs, stopping (max_frames, stop_event, Ctrl+C, SIGTERM), fault policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from streamkit import FakeModel, count_frames, frame_index, index_frame

from edgecv.errors import EngineError, SinkError
from edgecv.stream import (
    CallbackSink,
    JsonlSink,
    RunSummary,
    VideoSink,
    install_signal_handlers,
    open_source,
    run_pipeline,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _outputs(tmp_path: Path, src) -> tuple[VideoSink, JsonlSink]:  # type: ignore[no-untyped-def]
    return VideoSink(tmp_path / "out.avi", src.fps, src.size), JsonlSink(tmp_path / "out.jsonl")


def test_run_over_file(tmp_path: Path, video: Path, fake_model: FakeModel) -> None:
    src = open_source(video)
    video_sink, jsonl_sink = _outputs(tmp_path, src)
    summary = run_pipeline(fake_model, src, [video_sink, jsonl_sink], annotate=False)
    assert (summary.frames, summary.dropped, summary.bad_frames, summary.reconnects) == (60, 0, 0, 0)
    assert summary.stop_reason == "end" and not summary.interrupted and not summary.live
    assert summary.fps > 0 and summary.wall_s > 0
    assert summary.age_p50 is None  # frame age is reported for live sources
    rows = summary.stage_rows()
    assert [r[0] for r in rows] == ["capture", "pre", "infer", "post", "sink", "total"]
    assert all(r[1] >= 0 and r[3] >= r[2] for r in rows)
    lines = _jsonl(tmp_path / "out.jsonl")
    assert [d["frame"] for d in lines] == list(range(60))
    assert all(d["detections"][0]["box"][0] == d["frame"] for d in lines)  # results belong to their frame
    assert all(set(d["timings_ms"]) == {"capture", "pre", "infer", "post", "sink"} for d in lines)
    assert count_frames(tmp_path / "out.avi")[::2] == (60, list(range(60)))
    assert src.finished and fake_model.calls == 60
    json.dumps(summary.to_dict(), allow_nan=False)


def test_max_frames(tmp_path: Path, video: Path, fake_model: FakeModel) -> None:
    src = open_source(video)
    summary = run_pipeline(fake_model, src, _outputs(tmp_path, src), max_frames=10, annotate=False)
    assert summary.frames == 10 and summary.stop_reason == "max_frames"
    assert len(_jsonl(tmp_path / "out.jsonl")) == 10 and count_frames(tmp_path / "out.avi")[0] == 10
    assert src._thread is not None and not src._thread.is_alive()  # source closed


def test_stop_event_mid_run_leaves_complete_outputs(tmp_path: Path, video: Path) -> None:
    stop = threading.Event()
    model = FakeModel(on_call=lambda n: stop.set() if n == 14 else None)
    src = open_source(video)
    summary = run_pipeline(model, src, _outputs(tmp_path, src), stop_event=stop, annotate=False)
    assert summary.interrupted and summary.stop_reason == "stop" and summary.frames == 15
    assert len(_jsonl(tmp_path / "out.jsonl")) == 15
    assert count_frames(tmp_path / "out.avi")[::2] == (15, list(range(15)))


def test_keyboard_interrupt_from_model_finalizes_outputs(tmp_path: Path, video: Path) -> None:
    model = FakeModel(raise_at=12, exc=KeyboardInterrupt())
    src = open_source(video)
    summary = run_pipeline(model, src, _outputs(tmp_path, src), annotate=False)
    assert summary.interrupted and summary.stop_reason == "interrupt" and summary.frames == 12
    lines = _jsonl(tmp_path / "out.jsonl")
    assert len(lines) == summary.frames and count_frames(tmp_path / "out.avi")[0] == 12


def test_failing_sink_stops_run_after_finalizing_others(tmp_path: Path, video: Path, fake_model: FakeModel) -> None:
    def boom(result) -> None:  # type: ignore[no-untyped-def]
        if result.index == 5:
            raise OSError(28, "No space left on device")

    src = open_source(video)
    video_sink, jsonl_sink = _outputs(tmp_path, src)
    with pytest.raises(SinkError, match="failed on frame 5") as info:
        run_pipeline(fake_model, src, [video_sink, jsonl_sink, CallbackSink(boom)], annotate=False)
    assert "No space left" in str(info.value) and info.value.hint
    # the JSONL got frame 5 (it runs before the callback); the video has frames 0..5, finalized
    assert len(_jsonl(tmp_path / "out.jsonl")) == 6
    assert count_frames(tmp_path / "out.avi")[0] == 6
    assert src._thread is not None and not src._thread.is_alive()


def test_model_error_is_raised_after_cleanup(tmp_path: Path, video: Path) -> None:
    model = FakeModel(raise_at=3, exc=EngineError("engine exploded"))
    src = open_source(video)
    with pytest.raises(EngineError, match="exploded"):
        run_pipeline(model, src, _outputs(tmp_path, src), annotate=False)
    assert len(_jsonl(tmp_path / "out.jsonl")) == 3 and count_frames(tmp_path / "out.avi")[0] == 3


def test_bad_image_is_counted_not_fatal(tmp_path: Path, fake_model: FakeModel) -> None:
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), index_frame(i))
    (folder / "2.png").write_bytes(b"\x89PNG broken")
    jsonl = JsonlSink(tmp_path / "r.jsonl")
    summary = run_pipeline(
        fake_model, open_source(folder), [jsonl, VideoSink(tmp_path / "v.mp4", None, None)], annotate=False
    )
    assert summary.frames == 3 and summary.bad_frames == 1
    assert [d["frame"] for d in _jsonl(tmp_path / "r.jsonl")] == [0, 1, 3]
    assert count_frames(tmp_path / "v.mp4")[:2] == (3, (64, 48))


def test_annotator_and_overlay(
    tmp_path: Path, video: Path, fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    status_lines: list[list[str]] = []
    fake_draw = types.ModuleType("edgecv.vision.draw")

    def draw_status(frame: np.ndarray, lines: list[str]) -> np.ndarray:
        status_lines.append(lines)
        return frame

    fake_draw.draw_status = draw_status  # type: ignore[attr-defined]
    fake_draw.default_annotator = lambda task: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgecv.vision.draw", fake_draw)

    class Whiten:
        calls = 0

        def annotate(self, frame: np.ndarray, result: object) -> np.ndarray:
            self.calls += 1
            frame[:] = 252  # in place, visible in the recording
            return frame

    ann = Whiten()
    seen: list[np.ndarray] = []
    src = open_source(video)
    run_pipeline(
        fake_model, src, [CallbackSink(lambda r, img: seen.append(img), with_image=True)], annotator=ann, max_frames=5
    )
    assert ann.calls == 5 and all(img.min() == 252 for img in seen)
    assert len(status_lines) == 5 and "FPS" in status_lines[-1][0]
    # results are computed from the pixels before drawing
    assert fake_model.calls == 5


def test_no_drawing_when_no_sink_needs_images(video: Path, fake_model: FakeModel) -> None:
    calls: list[int] = []
    run_pipeline(
        fake_model,
        open_source(video),
        [CallbackSink(lambda r: None)],
        annotator=lambda f, r: calls.append(1),
        max_frames=3,
    )
    assert calls == []


def test_missing_draw_module_means_no_drawing(
    video: Path, fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "edgecv.vision.draw", None)  # import fails
    seen: list[np.ndarray] = []
    summary = run_pipeline(
        fake_model,
        open_source(video),
        [CallbackSink(lambda r, img: seen.append(img.copy()), with_image=True)],
        max_frames=3,
    )
    assert summary.frames == 3 and [frame_index(img) for img in seen] == [0, 1, 2]  # untouched


def test_status_callback_is_throttled(video: Path) -> None:
    snapshots: list[tuple[int, float]] = []
    model = FakeModel(infer_s=0.01)
    summary = run_pipeline(
        model, open_source(video), status=lambda s: snapshots.append((s.frames, s.wall_s)), status_interval_s=0.2
    )
    assert summary.frames == 60
    assert 1 <= len(snapshots) <= summary.wall_s / 0.2 + 1  # at most one per interval
    assert snapshots == sorted(snapshots)


def test_live_source_reports_drops_and_age(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("live.avi", n=60, fps=60.0)
    model = FakeModel(infer_s=0.04)
    summary = run_pipeline(model, open_source(path, realtime=True), [], annotate=False)
    assert summary.live and summary.dropped > 10 and summary.frames + summary.dropped == 60
    assert summary.age_p50 is not None and summary.age_p99 is not None and summary.age_p99 < 250
    d = summary.to_dict()
    assert d["age_ms"]["count"] == summary.frames and d["dropped"] == summary.dropped


def test_install_signal_handlers_restores_previous() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with install_signal_handlers(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 2
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is before


def test_install_signal_handlers_outside_main_thread_is_noop() -> None:
    before = signal.getsignal(signal.SIGINT)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            with install_signal_handlers(threading.Event()):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert not errors and signal.getsignal(signal.SIGINT) is before


SIGTERM_SCRIPT = """
import json, sys, threading
sys.path.insert(0, {here!r})
from streamkit import FakeModel
from edgecv.stream import JsonlSink, VideoSink, install_signal_handlers, open_source, run_pipeline

src = open_source({video!r}, realtime=True, loop=True)  # endless live source
sinks = [VideoSink({out!r}, src.fps, src.size), JsonlSink({jsonl!r})]
stop = threading.Event()
with install_signal_handlers(stop):
    summary = run_pipeline(FakeModel(), src, sinks, annotate=False, stop_event=stop)
print(json.dumps(summary.to_dict()))
sys.exit(130 if summary.interrupted else 0)
"""


def test_sigterm_finalizes_outputs(tmp_path: Path, video: Path) -> None:
    out, jsonl = tmp_path / "rec.mp4", tmp_path / "rec.jsonl"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(SIGTERM_SCRIPT.format(here=str(HERE), video=str(video), out=str(out), jsonl=str(jsonl)))
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr.decode()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["interrupted"] and summary["stop_reason"] == "stop" and summary["frames"] >= 5
    lines = _jsonl(jsonl)
    assert len(lines) == summary["frames"]
    n, size, _ = count_frames(out)
    assert n == summary["frames"] and size == (64, 48)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.avi",
        "rec.jsonl",
        "rec.mp4",
        "run.py",
    ]  # no temp file left


def test_summary_defaults() -> None:
    s = RunSummary()
    assert s.fps == 0.0 and s.age_p99 is None
    assert json.dumps(s.to_dict(), allow_nan=False)


class GpuPreModel(FakeModel):
    """A model that preprocesses on the GPU: its preprocess must run on the inference thread, and
    ``stage_ms`` moves the kernel's (CUDA-event) time from infer to pre."""

    gpu_preprocess = True

    def __init__(self) -> None:
        super().__init__(infer_s=0.004)
        self.pre_threads: set[int] = set()

    def preprocess(self, frame: np.ndarray) -> tuple[dict[str, np.ndarray], object]:
        self.pre_threads.add(threading.get_ident())
        return super().preprocess(frame)

    def stage_ms(self, pre_ms: float, infer_ms: float) -> tuple[float, float]:
        return pre_ms + 3.0, infer_ms - 3.0


def test_gpu_preprocessing_runs_on_the_inference_thread_with_gpu_time_in_pre(tmp_path: Path, video: Path) -> None:
    model = GpuPreModel()
    summary = run_pipeline(model, open_source(video), [JsonlSink(tmp_path / "out.jsonl")], annotate=False)
    assert summary.frames == 60 and model.pre_threads == model.thread_ids and len(model.thread_ids) == 1
    lines = _jsonl(tmp_path / "out.jsonl")
    assert all(d["detections"][0]["box"][0] == d["frame"] for d in lines)  # each frame preprocessed in its own turn
    assert all(d["timings_ms"]["pre"] >= 3.0 and 0.5 <= d["timings_ms"]["infer"] for d in lines)
