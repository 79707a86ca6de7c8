"""Several inferences in flight (``StreamConfig.inflight``): results still come out in frame order,
each with its own frame's result, trackers step in frame order, errors and early exits leave no
inference running, and a real model gives the same boxes as with one inference at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamkit import FakeModel, frame_index

import edgecv
from edgecv.errors import ConfigError, EngineError
from edgecv.results import Detections
from edgecv.stream import StreamConfig, open_source


class ConcurrentModel(FakeModel):
    """FakeModel whose calls may overlap: even calls are slow, odd ones fast (they finish out of order),
    or all slow (``uniform``). Call ``fail_at`` fails after 1.5 x the slow time.

    Counts calls under a lock and records the most calls ever running at once.
    """

    def __init__(self, slow_s: float = 0.02, fail_at: int | None = None, uniform: bool = False) -> None:
        super().__init__()
        self.slow_s = slow_s
        self.fail_at = fail_at
        self.uniform = uniform
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.finished_order: list[int] = []

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            n = self.calls
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.thread_ids.add(threading.get_ident())
        try:
            if self.fail_at is not None and n == self.fail_at:
                time.sleep(self.slow_s * 1.5)
                raise EngineError(f"call {n} failed")
            time.sleep(self.slow_s if self.uniform or n % 2 == 0 else 0.001)
            index = frame_index(feeds["images"])
            with self._lock:
                self.finished_order.append(index)
            return {"index": np.array([index], np.float32)}
        finally:
            with self._lock:
                self.running -= 1


class OrderTracker:
    """A tracker that records the frame indices it is stepped with."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def update(self, dets: Detections) -> Detections:
        self.seen.append(int(dets.xyxy[0, 0]))
        return dets


def test_results_in_frame_order_while_inferences_overlap(video: Path) -> None:
    model = ConcurrentModel()
    stepped: list[int] = []
    config = StreamConfig(inflight=2, tracker_factory=lambda: OrderTracker(stepped))
    with edgecv.stream(model, video, config) as stream:
        results = list(stream)
    assert [r.index for r in results] == list(range(60))
    assert all(int(r.result.xyxy[0, 0]) == r.index for r in results)  # each result is its own frame's
    assert stepped == list(range(60))  # the tracker saw the frames in order
    assert model.most_running == 2  # two calls did overlap, never more
    assert model.finished_order != sorted(model.finished_order)  # ...and finished out of order
    assert len(model.thread_ids) == 2  # on the two worker threads
    assert threading.get_ident() not in model.thread_ids
    (summary,) = stream.summaries
    assert summary.frames == 60 and summary.stop_reason == "end"
    assert stream.stats.frames == 60 and stream.stats.infer_calls == 60


def test_inflight_one_infers_on_the_iterating_thread(video: Path) -> None:
    model = ConcurrentModel(slow_s=0.0)
    with edgecv.stream(model, video, inflight=1) as stream:
        assert sum(1 for _ in stream) == 60
    assert model.thread_ids == {threading.get_ident()} and model.most_running == 1


def test_several_sources_keep_their_order_with_inflight(make_video) -> None:  # type: ignore[no-untyped-def]
    model = ConcurrentModel(slow_s=0.005)
    videos = [make_video(f"v{i}.avi", n=n) for i, n in enumerate((40, 25))]
    with edgecv.stream(model, videos, inflight=3) as stream:
        results = list(stream)
    for k, n in enumerate((40, 25)):
        mine = [r for r in results if r.source_index == k]
        assert [r.index for r in mine] == list(range(n))
        assert all(int(r.result.xyxy[0, 0]) == r.index for r in mine)
    assert model.most_running >= 2


def test_an_inference_error_is_raised_after_every_call_in_flight_ended(video: Path) -> None:
    model = ConcurrentModel(slow_s=0.3, fail_at=3, uniform=True)  # call 4 is in flight when 3 fails
    seen: list[int] = []
    stream = edgecv.stream(model, video, inflight=2)
    with pytest.raises(EngineError, match="call 3 failed"):
        for r in stream:
            seen.append(r.index)
    assert model.running == 0  # nothing still runs on a model the caller is about to close
    assert seen == [0, 1, 2] and model.calls >= 5  # 4 (at least) was running when 3 failed
    assert stream.summaries[0].stop_reason == "error"


def test_breaking_out_waits_for_the_calls_in_flight(video: Path) -> None:
    model = ConcurrentModel(slow_s=0.3, uniform=True)
    stream = edgecv.stream(model, video, inflight=2)
    in_flight_at_break = 0
    for _ in stream:
        in_flight_at_break = model.running
        if in_flight_at_break:  # break while a call runs
            break
    assert in_flight_at_break >= 1 and model.running == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("edgecv-infer") and t.is_alive()]
    assert stream.summaries[0].stop_reason == "stop"


def test_stop_delivers_the_batches_in_flight_then_ends(video: Path) -> None:
    model = ConcurrentModel(slow_s=0.01)
    stop = threading.Event()
    stream = edgecv.stream(model, video, inflight=2, stop_event=stop)
    seen = []
    for r in stream:
        seen.append(r.index)
        if r.index == 10:
            stop.set()
    # what was taken before the stop is delivered (at most 2 x inflight batches wait), nothing after
    assert seen == list(range(len(seen))) and 11 <= len(seen) <= 11 + 2 * 2
    assert model.calls == len(seen)  # every inferred frame was delivered
    (summary,) = stream.summaries
    assert summary.frames == len(seen) and summary.stop_reason == "stop" and summary.interrupted


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_inflight_is_validated(bad: object) -> None:
    with pytest.raises(ConfigError, match="inflight"):
        StreamConfig(inflight=bad)  # type: ignore[arg-type]


def test_real_model_gives_the_same_boxes_with_two_in_flight(det_onnx: Path, demo_video: Path) -> None:
    def boxes(inflight: int, threads: int) -> list[np.ndarray]:
        with edgecv.load(det_onnx, threads=threads) as model, edgecv.stream(model, open_source(demo_video), inflight=inflight, keep_frames=False) as s:
            return [np.concatenate([r.result.xyxy, r.result.scores[:, None], r.result.class_ids[:, None]], 1) for r in s]

    one, two = boxes(1, 2), boxes(2, 1)
    assert len(one) == len(two) == 24
    assert sum(len(b) for b in one) > 0
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_workers_take_the_next_frame_themselves_within_a_bounded_read_ahead(video: Path) -> None:
    """A worker that finishes takes the next ready frame itself (no idle core while the loop's thread is
    busy), but never runs more than 2 x inflight frames ahead of a slow consumer."""
    model = ConcurrentModel(slow_s=0.004, uniform=True)
    ahead = []
    with edgecv.stream(model, video, inflight=2) as stream:
        for i, r in enumerate(stream):
            assert r.index == i
            time.sleep(0.02)  # a slow consumer: the workers run ahead of it
            ahead.append(model.calls - (i + 1))
    assert 2 < max(ahead) <= 2 * 2 + 1
    assert model.calls == 60
