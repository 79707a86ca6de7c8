"""The streaming API (edgecv.stream): iteration, early break, callback form, several sources in batches,
dead/slow/failing sources, per-source trackers and sinks, and batched == single-frame results."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamkit import FakeModel, count_frames, frame_index

import edgecv
from edgecv.errors import ConfigError, SourceError
from edgecv.results import Detections
from edgecv.stream import JsonlSink, Stream, StreamConfig, VideoSink, open_source, run_pipeline, run_sources
from edgecv.stream.capture import Source


def _edgecv_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("edgecv-") and t.is_alive()]


def _no_edgecv_threads(timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while _edgecv_threads() and time.monotonic() < end:
        time.sleep(0.02)
    return not _edgecv_threads()


class DeadSource(Source):
    """A live source that never delivers a frame (a camera that hangs) until closed."""

    kind = "dead"

    def __init__(self, name: str = "dead-cam", fail_after_s: float | None = None) -> None:
        super().__init__(name, live=True, fps=30.0, size=(64, 48))
        self.fail_after_s = fail_after_s
        self._start()

    def _capture(self) -> None:
        if self.fail_after_s is not None:
            if not self._stop.wait(self.fail_after_s):
                raise SourceError(f"{self.name} did not come back within 0 s", hint="check the camera")
            return
        self._stop.wait()


class BatchModel(FakeModel):
    """FakeModel with ``infer_batch``: records every batch's size."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.batch_sizes: list[int] = []
        self.pre_calls = 0

    def preprocess(self, frame: np.ndarray) -> tuple[dict[str, np.ndarray], object]:
        self.pre_calls += 1
        return super().preprocess(frame)

    def infer_batch(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        self.batch_sizes.append(len(feeds))
        return [self.infer(f) for f in feeds]


def _x1(r: edgecv.FrameResult) -> int:
    assert isinstance(r.result, Detections)
    return int(r.result.xyxy[0, 0])


def test_iterate_one_source(video: Path, fake_model: FakeModel) -> None:
    with edgecv.stream(fake_model, video) as stream:
        results = list(stream)
    assert [r.index for r in results] == list(range(60))
    assert all(_x1(r) == r.index for r in results)  # each result belongs to its frame
    assert all(r.frame is not None and frame_index(r.frame) == r.index for r in results)
    assert {(r.source_index, r.source) for r in results} == {(0, str(video))}
    assert all(r.timings.infer >= 0 and r.timings.sink >= 0 for r in results)
    (summary,) = stream.summaries
    assert summary.frames == 60 and summary.stop_reason == "end" and not summary.interrupted
    assert summary.stages["total"].count == 60
    assert _no_edgecv_threads()


def test_break_out_of_the_loop_joins_threads_and_closes_sources(make_video) -> None:  # type: ignore[no-untyped-def]
    live = open_source(make_video("live.avi", n=300, fps=100.0), realtime=True)
    files = [open_source(make_video(f"f{i}.avi", n=200)) for i in range(2)]
    model = FakeModel()
    stream = edgecv.stream(model, [live, *files])
    for r in stream:  # no with: breaking out must still stop everything
        if r.index >= 5:
            break
    assert _no_edgecv_threads(), _edgecv_threads()
    assert all(s._closed for s in (live, *files))
    assert all(s.stop_reason == "stop" for s in stream.summaries)
    with pytest.raises(ConfigError, match="iterated once"):
        iter(stream)


def test_callback_form_on_a_background_thread(video: Path) -> None:
    seen: list[tuple[int, int]] = []
    model = FakeModel()
    stream = edgecv.stream(model, video, callback=lambda r: seen.append((r.index, threading.get_ident())))
    (summary,) = stream.join(timeout=20)
    assert [i for i, _ in seen] == list(range(60)) and summary.frames == 60
    # inference happens on the stream's thread, not the caller's
    assert model.thread_ids == {seen[0][1]} != {threading.get_ident()}
    assert _no_edgecv_threads()


def test_callback_returning_false_stops(video: Path) -> None:
    seen: list[int] = []
    stream = Stream(FakeModel(), video)
    summaries = stream.run(lambda r: seen.append(r.index) or len(seen) < 7)
    assert seen == list(range(7)) and summaries[0].frames == 7 and summaries[0].stop_reason == "stop"
    assert _no_edgecv_threads()


def test_error_in_callback_thread_is_raised_by_join(video: Path) -> None:
    def boom(r: object) -> None:
        raise RuntimeError("consumer bug")

    stream = edgecv.stream(FakeModel(), video, callback=boom)
    with pytest.raises(RuntimeError, match="consumer bug"):
        stream.join(timeout=20)
    assert _no_edgecv_threads()


def test_several_sources_of_different_sizes_and_lengths_are_batched(make_video) -> None:  # type: ignore[no-untyped-def]
    paths = [
        make_video("a.avi", n=40, size=(64, 48)),
        make_video("b.avi", n=25, size=(96, 64), fps=15.0),
        make_video("c.avi", n=40, size=(48, 80), fps=60.0),
    ]
    model = BatchModel()
    by_source: dict[int, list[int]] = {0: [], 1: [], 2: []}
    with edgecv.stream(model, paths, batch_timeout_ms=200) as stream:
        for r in stream:
            assert _x1(r) == r.index and r.frame is not None
            assert r.frame.shape[:2] == {0: (48, 64), 1: (64, 96), 2: (80, 48)}[r.source_index]
            by_source[r.source_index].append(r.index)
    # every frame of every file, in order per source
    assert by_source == {0: list(range(40)), 1: list(range(25)), 2: list(range(40))}
    assert [s.frames for s in stream.summaries] == [40, 25, 40]
    # files always have a frame ready: batches of 3 while all three run, then of 2
    assert stream.stats.batches == 40 and model.batch_sizes.count(3) >= 20
    assert max(model.batch_sizes) == 3 and sum(model.batch_sizes) == 105
    assert model.pre_calls == 105  # prefetch preprocessed exactly the frames inferred


def test_max_batch_splits_a_batch(make_video) -> None:  # type: ignore[no-untyped-def]
    paths = [make_video(f"{i}.avi", n=10) for i in range(3)]
    model = BatchModel()
    with edgecv.stream(model, paths, max_batch=2, batch_timeout_ms=200) as stream:
        n = sum(1 for _ in stream)
    assert n == 30 and max(model.batch_sizes) == 2


def test_max_batch_one_takes_sources_round_robin(make_video) -> None:  # type: ignore[no-untyped-def]
    paths = [make_video(f"{i}.avi", n=10) for i in range(3)]
    with edgecv.stream(FakeModel(), paths, max_batch=1, batch_timeout_ms=500) as stream:
        order = [r.source_index for r in stream]
    assert sorted(order) == [0] * 10 + [1] * 10 + [2] * 10
    # no source waits behind another: every window of 3 consecutive frames holds each source once
    assert order[:9] == [0, 1, 2] * 3


def test_dead_source_does_not_stall_the_others(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("ok.avi", n=50)
    dead = DeadSource()
    start = time.monotonic()
    with edgecv.stream(FakeModel(), [dead, path], batch_timeout_ms=10) as stream:
        got = [r for r in stream if r.source_index == 1 and r.index < 49 or r.index == 49 and stream.stop() is None]
    elapsed = time.monotonic() - start
    assert [r.index for r in got] == list(range(50))
    assert all(r.source_index == 1 for r in got)
    # 50 batches at <= 10 ms of waiting each for the dead camera: well under a second of waiting
    assert elapsed < 5.0
    s_dead, s_ok = stream.summaries
    assert s_dead.frames == 0 and s_ok.frames == 50
    assert dead._closed and _no_edgecv_threads()


def test_slow_live_source_does_not_slow_a_fast_one(make_video) -> None:  # type: ignore[no-untyped-def]
    slow = open_source(make_video("slow.avi", n=10, fps=5.0), realtime=True)  # 10 frames over 2 s
    fast = open_source(make_video("fast.avi", n=60))
    slow_seen_when_fast_done = None
    slow_seen = 0
    with edgecv.stream(BatchModel(), [slow, fast], batch_timeout_ms=5) as stream:
        for r in stream:
            slow_seen += r.source_index == 0
            if r.source_index == 1 and r.index == 59:
                slow_seen_when_fast_done = slow_seen
    # paced by the 5 fps camera, the fast file would get one batch per slow frame (10 in 2 s)
    assert slow_seen_when_fast_done is not None and slow_seen_when_fast_done <= 6
    s_slow, s_fast = stream.summaries
    assert s_fast.frames == 60 and 1 <= s_slow.frames <= 10 and s_slow.stop_reason == "end"


def test_failing_source_is_dropped_and_the_others_go_on(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("ok.avi", n=30, fps=30.0)
    failing = DeadSource("cam-that-gives-up", fail_after_s=0.05)
    ok = open_source(path, realtime=True)  # ~1 s of frames: the failure happens while it runs
    with edgecv.stream(FakeModel(), [failing, ok], batch_timeout_ms=10) as stream:
        results = list(stream)
    assert results and all(r.source_index == 1 for r in results) and results[-1].index >= 25
    assert list(stream.errors) == [0] and isinstance(stream.errors[0], SourceError)
    s_fail, s_ok = stream.summaries
    assert s_fail.stop_reason == "error" and s_ok.stop_reason == "end"


def test_one_failing_source_alone_raises(make_video) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError, match="did not come back"):
        with edgecv.stream(FakeModel(), DeadSource(fail_after_s=0.05)) as stream:
            list(stream)
    assert _no_edgecv_threads()


class RecordingTracker:
    """Stands in for edgecv.track: records what it is stepped with and tags detections with an id."""

    made: list[RecordingTracker] = []

    def __init__(self) -> None:
        self.steps: list[int] = []
        RecordingTracker.made.append(self)

    def update(self, detections: Detections) -> Detections:
        self.steps.append(int(detections.xyxy[0, 0]))
        tid = np.full(len(detections), len(RecordingTracker.made), np.int64)
        return Detections(detections.xyxy, detections.scores, detections.class_ids, detections.names, data={"tracker_id": tid})


def test_one_tracker_per_source_stepped_in_frame_order(make_video) -> None:  # type: ignore[no-untyped-def]
    RecordingTracker.made = []
    paths = [make_video("a.avi", n=20), make_video("b.avi", n=12)]
    with edgecv.stream(BatchModel(), paths, tracker_factory=RecordingTracker, batch_timeout_ms=100) as stream:
        results = list(stream)
    a, b = RecordingTracker.made
    assert a.steps == list(range(20)) and b.steps == list(range(12))
    assert all(isinstance(r.result, Detections) and "tracker_id" in r.result.data for r in results)


def test_config_is_validated() -> None:
    for bad in ({"batch_timeout_ms": -1}, {"max_frames": -2}, {"max_batch": 0}, {"tracker_factory": 3}, {"prefetch": "lazy"}):
        with pytest.raises(ConfigError):
            StreamConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_timeout_ms"):
        edgecv.stream(FakeModel(), "x.avi", batch_timeout=5)
    with pytest.raises(ConfigError, match="no source"):
        Stream(FakeModel(), [])


def test_run_sources_writes_per_source_sinks(tmp_path: Path, make_video) -> None:  # type: ignore[no-untyped-def]
    paths = [make_video("a.avi", n=20, size=(64, 48)), make_video("b.avi", n=15, size=(96, 64))]
    srcs = [open_source(p) for p in paths]
    sinks = [
        [VideoSink(tmp_path / f"out{i}.avi", s.fps, s.size), JsonlSink(tmp_path / f"out{i}.jsonl")] for i, s in enumerate(srcs)
    ]
    result = run_sources(FakeModel(), srcs, sinks, StreamConfig(batch_timeout_ms=100), annotate=False)
    assert [s.frames for s in result.sources] == [20, 15] and not result.errors
    for i, n, size in ((0, 20, (64, 48)), (1, 15, (96, 64))):
        lines = [json.loads(x) for x in (tmp_path / f"out{i}.jsonl").read_text().splitlines()]
        assert [d["frame"] for d in lines] == list(range(n))
        assert all(d["detections"][0]["box"][0] == d["frame"] for d in lines)
        assert count_frames(tmp_path / f"out{i}.avi")[:2] == (n, size)
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_run_pipeline_is_a_stream_consumer_with_overlay_drop_count(make_video, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A live source with a slow model: every dropped frame is in the overlay and summary, and the
    prefetch worker preprocessed only the frames that were inferred."""
    import sys
    import types

    lines: list[list[str]] = []
    fake_draw = types.ModuleType("edgecv.vision.draw")
    fake_draw.draw_status = lambda frame, text: lines.append(text)  # type: ignore[attr-defined]
    fake_draw.default_annotator = lambda task: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgecv.vision.draw", fake_draw)
    model = BatchModel(infer_s=0.03)
    src = open_source(make_video("live.avi", n=60, fps=60.0), realtime=True)
    seen: list[int] = []
    from edgecv.stream import CallbackSink

    sink = CallbackSink(lambda r, img: seen.append(r.index), with_image=True)
    summary = run_pipeline(model, src, [sink], annotator=lambda frame, result: frame)
    assert summary.dropped > 10 and summary.frames + summary.dropped == 60
    assert model.pre_calls == summary.frames == len(seen)
    shown = [int(t.split()[1]) for text in lines for t in text if t.startswith("dropped")]
    assert shown and shown == sorted(shown) and shown[-1] >= summary.dropped - 5


# -- the batched inference path of a real model ------------------------------------------------------
def _real_frames(demo_video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(demo_video))
    frames = []
    while len(frames) < 4:
        ok, img = cap.read()
        assert ok
        frames.append(img)
    cap.release()
    return frames


def _same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_infer_batch_matches_single_frame_inference(det_onnx: Path, demo_video: Path) -> None:
    model = edgecv.load(det_onnx, conf=0.2)
    f = _real_frames(demo_video)
    # the same size, and other sizes / aspect ratios (letterboxed per frame)
    frames = [f[0], f[1], cv2.resize(f[2], (320, 200)), cv2.resize(f[3], (200, 320)), cv2.resize(f[0], (160, 100))]
    singles = [model(img) for img in frames]
    prepared = [model.preprocess(img) for img in frames]
    outputs = model.infer_batch([feeds for feeds, _ in prepared])
    assert model.batchable and model.last_batch_calls == 3  # equal input shapes share a call
    for (_, transform), out, single in zip(prepared, outputs, singles):
        _same(model.postprocess(out, transform), single)
    model.infer_batch([prepared[0][0], prepared[1][0]])
    assert model.last_batch_calls == 1


def test_stream_results_match_single_frame_inference(det_onnx: Path, demo_video: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.avi"
    cap = cv2.VideoCapture(str(demo_video))
    writer = cv2.VideoWriter(str(small), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (200, 150))
    for _ in range(8):
        ok, img = cap.read()
        writer.write(cv2.resize(img, (200, 150)))
    cap.release()
    writer.release()
    model = edgecv.load(det_onnx, conf=0.2)
    with edgecv.stream(model, [demo_video, small, demo_video], max_frames=8, batch_timeout_ms=500) as stream:
        results = list(stream)
    assert len(results) == 24 and stream.stats.mean_batch == 3.0
    assert any(len(r.result) for r in results)
    for r in results:
        assert r.frame is not None
        reference = model(r.frame)
        assert len(reference) == len(r.result)
        if len(reference):
            _same(r.result, reference)


def test_infer_batch_matches_single_frame_segmentation(seg_onnx: Path, demo_video: Path) -> None:
    from edgecv.results import Segmentation

    model = edgecv.load(seg_onnx)
    f = _real_frames(demo_video)
    frames = [f[0], f[1], cv2.resize(f[2], (300, 200))]
    prepared = [model.preprocess(img) for img in frames]
    outputs = model.infer_batch([feeds for feeds, _ in prepared])
    for img, (_, transform), out in zip(frames, prepared, outputs):
        batched, single = model.postprocess(out, transform), model(img)
        assert isinstance(batched, Segmentation) and isinstance(single, Segmentation)
        assert batched.class_map.shape == img.shape[:2]
        assert (batched.class_map == single.class_map).mean() > 0.999  # float rounding may flip a boundary pixel


def test_ctrl_c_in_a_sink_is_an_interrupt_with_outputs_finalized(tmp_path: Path, video: Path) -> None:
    from edgecv.stream import CallbackSink

    def sink(r: edgecv.FrameResult) -> None:
        if r.index == 4:
            raise KeyboardInterrupt

    out = tmp_path / "d.jsonl"
    summary = run_pipeline(FakeModel(), open_source(video), [JsonlSink(out), CallbackSink(sink)], annotate=False)
    assert summary.stop_reason == "interrupt" and summary.interrupted
    assert [json.loads(x)["frame"] for x in out.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert _no_edgecv_threads()
