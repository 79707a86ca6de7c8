from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecv.artifact import (
    ModelMeta,
    atomic_output,
    infer_meta,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from edgecv.errors import ArtifactError, ConfigError


def meta() -> ModelMeta:
    return ModelMeta("detect", ("a", "b"), (256, 320), "yolov8", dynamic=True, stride=32, arch="shapes-det")


def test_props_round_trip_and_foreign_props_kept_apart() -> None:
    m = meta()
    props = m.to_props()
    assert all(k.startswith("edgecv.") for k in props)
    props["names"] = "{0: 'person'}"  # an Ultralytics key must not be confused with ours
    assert ModelMeta.from_props(props) == m
    assert ModelMeta.from_props({"names": "x"}) is None


def test_corrupt_metadata_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="corrupt edgecv metadata"):
        ModelMeta.from_props({"edgecv.task": "{not json"})
    with pytest.raises(ArtifactError, match="incomplete"):
        ModelMeta.from_props({"edgecv.task": '"detect"'})


def test_infer_meta_recognises_yolov8_and_segmenter_layouts() -> None:
    m = infer_meta([1, 3, 640, 640], [[1, 84, 8400]])
    assert (m.task, m.num_classes, m.input_size, m.dynamic) == ("detect", 80, (640, 640), False)
    m = infer_meta([1, 3, None, None], [[1, 6, 2100]], foreign_props={"names": "{0: 'a', 1: 'b'}", "stride": "32", "imgsz": "[320, 320]"})
    assert m.names == ("a", "b") and m.input_size == (320, 320) and m.dynamic
    s = infer_meta([1, 3, 256, 256], [[1, 5, 256, 256]], names=list("abcde"))
    assert s.task == "segment" and s.names == tuple("abcde")


def test_infer_meta_rejects_unknown_layouts_and_bad_names() -> None:
    with pytest.raises(ArtifactError, match="no layout edgecv knows has 2 outputs"):
        infer_meta([1, 3, 64, 64], [[1, 10], [1, 4]])
    with pytest.raises(ConfigError, match="2 class names given but the model has 80"):
        infer_meta([1, 3, 640, 640], [[1, 84, 8400]], names=["a", "b"])
    with pytest.raises(ConfigError, match="does not match"):
        infer_meta([1, 3, 640, 640], [[1, 84, 8400]], task="segment")


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_output_to_missing_folder_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        with atomic_output(tmp_path / "nope" / "x.onnx"):
            pass
    assert "mkdir -p" in str(info.value)


def test_sidecar_round_trip_and_missing(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    write_sidecar(engine, meta(), tensorrt="10.3.0", compute_capability="8.7")
    assert sidecar_path(engine).name == "m.engine.json"
    m, info = read_sidecar(engine)
    assert m == meta() and info["tensorrt"] == "10.3.0"
    assert json.loads(sidecar_path(engine).read_text())["edgecv"]["task"] == "detect"
    with pytest.raises(ArtifactError, match="no manifest"):
        read_sidecar(tmp_path / "other.engine")
