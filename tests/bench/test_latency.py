"""edgecv bench: measurement, interleaving, failures, batch sizes, accuracy columns, the loop ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecv.artifact import ModelMeta
from edgecv.bench.latency import BenchConfig, add_accuracy, benchmark, frames_from, synthetic_frames
from edgecv.bench.loop import loop_benchmark
from edgecv.engine.base import TensorSpec
from edgecv.errors import ConfigError, EngineError, SourceError
from edgecv.results import Detections


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return synthetic_frames(4, (240, 320))


@pytest.mark.parametrize(
    "kwargs",
    [{"iterations": 0}, {"duration_s": 0.0}, {"warmup": -1}, {"warmup_s": -1.0}, {"batch_sizes": (0,)}, {"batch_sizes": ()}, {"chunk": 0}],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        BenchConfig(**kwargs)


def test_models_side_by_side_with_a_failure_and_batches(det_onnx: Path, seg_onnx: Path, frames: list[np.ndarray]) -> None:
    cfg = BenchConfig(warmup=2, iterations=12, chunk=5, batch_sizes=(1, 2), threads=1)
    report = benchmark([det_onnx, "missing.onnx", seg_onnx], cfg, frames)
    rows = {(Path(r.model).name, r.batch): r for r in report.results}
    assert len(rows) == 6
    for name in ("shapes-det.onnx", "shapes-seg.onnx"):
        for batch in (1, 2):
            r = rows[(name, batch)]
            assert r.ok and all(s.count == 12 for s in r.stages.values())
            assert r.input_shape == [batch, 3, 192, 256]  # 4:3 frames, minimal padding
            e2e = r.stages["e2e"]
            parts = sum(r.stages[k].mean for k in ("pre", "infer", "post"))
            assert e2e.mean == pytest.approx(parts, rel=0.05)
            assert r.throughput_fps == pytest.approx(batch * 1000 / e2e.mean)
    assert rows[("shapes-det.onnx", 1)].speedup == 1.0 and rows[("shapes-det.onnx", 2)].speedup == 1.0
    assert rows[("shapes-seg.onnx", 1)].speedup == pytest.approx(
        rows[("shapes-det.onnx", 1)].stages["e2e"].p50 / rows[("shapes-seg.onnx", 1)].stages["e2e"].p50
    )
    missing = rows[("missing.onnx", 1)]
    assert missing.status == "error" and "not found" in (missing.error or "") and missing.throughput_fps is None
    assert report.config["batch_sizes"] == [1, 2]


def test_static_batch_model_gets_an_error_row_for_bigger_batches(tmp_path: Path, frames: list[np.ndarray]) -> None:
    pytest.importorskip("onnx")
    from tiny_models import constant_yolo, yolo_raw

    static = constant_yolo(tmp_path / "static.onnx", yolo_raw([(10, 10, 8, 6)], [[0.9, 0.1]]))
    report = benchmark([static], BenchConfig(warmup=0, iterations=3, batch_sizes=(1, 4)), frames)
    one, four = report.results
    assert one.ok and four.status == "error" and "fixed at 1" in (four.error or "")


class FakeModel:
    """Records the order of calls; fails on purpose after ``fail_after`` inferences."""

    def __init__(self, name: str, log: list[str], fail_after: int | None = None) -> None:
        self.name, self.log, self.fail_after, self.calls = name, log, fail_after, 0
        self.meta = ModelMeta("detect", ("a",), (32, 32), "yolov8")
        self.task = "detect"
        self.engine = type("E", (), {"backend": "fake", "inputs": [TensorSpec("images", (-1, 3, 32, 32), np.dtype(np.float32))], "close": lambda s: None})()

    def preprocess(self, frame: np.ndarray):  # type: ignore[no-untyped-def]
        return {"images": np.zeros((1, 3, 32, 32), np.float32)}, None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self.log.append(self.name)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise EngineError("device lost")
        return {"out": feeds["images"]}

    def postprocess(self, outputs: dict[str, np.ndarray], transform: Any) -> Detections:
        return Detections.empty()

    def close(self) -> None:
        pass


def test_entries_are_interleaved_and_a_failing_one_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch, frames: list[np.ndarray]) -> None:
    calls: list[str] = []
    fakes = {"a.onnx": FakeModel("a", calls), "b.onnx": FakeModel("b", calls, fail_after=8), "c.onnx": FakeModel("c", calls)}
    import edgecv

    monkeypatch.setattr(edgecv, "load", lambda path, **kw: fakes[str(path)])
    report = benchmark(["a.onnx", "b.onnx", "c.onnx"], BenchConfig(warmup=2, iterations=9, chunk=3), frames)
    timed = calls[6:]  # after the warm-ups (2 each)
    assert timed[:9] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3  # round 1: each model takes its turn
    assert timed[9:12] == ["a"] * 3
    a, b, c = report.results
    assert a.ok and c.ok and a.stages["e2e"].count == 9 == c.stages["e2e"].count
    assert b.status == "error" and b.error == "device lost"


def test_duration_mode_runs_each_entry_for_its_budget(det_onnx: Path, frames: list[np.ndarray]) -> None:
    report = benchmark([det_onnx], BenchConfig(warmup_s=0.05, duration_s=0.3, chunk=5, threads=1), frames)
    e2e = report.results[0].stages["e2e"]
    assert e2e.count * e2e.mean >= 300


def test_accuracy_columns_and_deltas(det_onnx: Path, seg_onnx: Path, shapes_val: Path, frames: list[np.ndarray], copy_of) -> None:  # type: ignore[no-untyped-def]
    det_copy = copy_of(det_onnx)
    report = benchmark([det_onnx, det_copy, seg_onnx], BenchConfig(warmup=0, iterations=2), frames)
    add_accuracy(report, shapes_val, max_images=8)
    det, det2, seg = report.results
    assert det.accuracy and det.accuracy["metric"] == "map" and 0.5 < det.accuracy["value"] <= 1
    assert det.accuracy_delta == 0 and det2.accuracy_delta == pytest.approx(0.0)
    assert seg.accuracy and seg.accuracy["metric"] == "miou" and seg.accuracy_delta is None  # different metric


def test_frames_from_a_video_and_a_bad_source(demo_video: Path, tmp_path: Path) -> None:
    got = frames_from(demo_video, limit=5)
    assert len(got) == 5 and got[0].shape == (480, 640, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        frames_from(tmp_path / "empty")


def test_loop_benchmark_reports_a_ratio(det_onnx: Path, demo_video: Path) -> None:
    result = loop_benchmark(det_onnx, demo_video, threads=1, repeats=1)
    assert result.frames == 24 and result.bare_fps > 0 and result.loop_fps > 0
    assert result.ratio == pytest.approx(result.loop_fps / result.bare_fps)
    assert (result.inflight, result.threads, result.bare_kind) == (1, 1, "as asked")  # a thread count given is kept


def test_loop_benchmark_uses_the_run_policy_and_the_best_bare(det_onnx: Path, demo_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    result = loop_benchmark(det_onnx, demo_video, repeats=1)
    assert (result.inflight, result.threads) == (2, 2)  # what `edgecv run` picks for a file on 4 cores
    assert result.bare_kind in ("spinning", "no spinning")
