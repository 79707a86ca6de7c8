from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import constant_yolo, yolo_raw

import edgecv
from edgecv.engine import load_engine
from edgecv.errors import ArtifactError, ConfigError, EngineError


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    raw = yolo_raw([(10, 10, 8, 6), (20, 24, 6, 4)], [[0.9, 0.1], [0.2, 0.8]])
    return constant_yolo(tmp_path / "foreign.onnx", raw, props={"names": "{0: 'cat', 1: 'dog'}"})


def test_foreign_yolo_onnx_is_recognised_and_decoded(foreign: Path) -> None:
    with load_engine(foreign) as engine:
        assert engine.meta.task == "detect" and engine.meta.names == ("cat", "dog")
        assert "no edgecv metadata" in engine.meta_source
        assert engine.inputs[0].shape == (1, 3, 32, 32)
    model = edgecv.load(foreign, conf=0.5)
    dets = model(np.zeros((32, 32, 3), np.uint8))
    assert dets.class_names == ["cat", "dog"]
    np.testing.assert_allclose(dets.xyxy, [[6, 7, 14, 13], [17, 22, 23, 26]], atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.8], atol=1e-6)


def test_names_override_and_wrong_count(foreign: Path) -> None:
    assert edgecv.load(foreign, names=["a", "b"]).names == ("a", "b")
    with pytest.raises(ConfigError, match="3 class names given but the model has 2"):
        edgecv.load(foreign, names=["a", "b", "c"])


def test_feeds_are_checked_with_expected_and_got(foreign: Path) -> None:
    engine = load_engine(foreign)
    with pytest.raises(EngineError, match=r"input images \(1, 3, 32, 32\) float32 got \(1, 3, 16, 16\) float32"):
        engine.infer({"images": np.zeros((1, 3, 16, 16), np.float32)})
    with pytest.raises(EngineError, match="expected inputs"):
        engine.infer({"x": np.zeros((1, 3, 32, 32), np.float32)})
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        engine.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"this is not a model", "not a loadable ONNX model")],
)
def test_bad_files_are_artifact_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        load_engine(path)


def test_truncated_model_is_an_artifact_error(det_onnx: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(det_onnx.read_bytes()[: det_onnx.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="truncated, corrupt or not ONNX") as info:
        load_engine(cut)
    assert "fix:" in str(info.value)


def test_paths_and_backends(tmp_path: Path, foreign: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        load_engine(tmp_path / "missing.onnx")
    with pytest.raises(ArtifactError, match="unknown model type"):
        (tmp_path / "m.tflite").write_bytes(b"x")
        load_engine(tmp_path / "m.tflite")
    with pytest.raises(ConfigError, match="did you mean 'onnxruntime'"):
        load_engine(foreign, backend="onnxrntime")
    with pytest.raises(ConfigError, match="not available"):
        load_engine(foreign, providers=["cuda"])


def test_shipped_detector_metadata(det_onnx: Path) -> None:
    with load_engine(det_onnx, threads=1) as engine:
        meta = engine.meta
        assert meta.task == "detect" and meta.arch == "shapes-det" and meta.output_format == "yolov8"
        assert meta.names == ("circle", "rectangle", "triangle", "star") and meta.dynamic
        assert engine.inputs[0].shape == (-1, 3, -1, -1)
        out = engine.infer({"images": np.zeros((1, 3, 192, 256), np.float32)})
        assert next(iter(out.values())).shape == (1, 8, (24 * 32 + 12 * 16 + 6 * 8))


def test_threads_follow_cpu_affinity_and_workers_do_not_spin(det_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spinning workers take cores from the capture/preprocessing threads (scripts/bench_run_vs_bare.py); taskset limits count."""
    import os

    from edgecv.engine import onnxruntime as ort_backend

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert ort_backend.default_threads() == 1  # pinned to one core of four: one thread, not four
    with ort_backend.OnnxRuntimeEngine(det_onnx) as engine:
        options = engine.session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert ort_backend.default_threads() is None  # every core: ONNX Runtime's own count (physical cores)
    with ort_backend.OnnxRuntimeEngine(det_onnx, spinning=True, threads=2) as engine:
        options = engine.session.get_session_options()
        assert options.intra_op_num_threads == 2 and options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
