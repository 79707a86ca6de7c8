"""`edgecv deploy deepstream`: the nvinfer key file (parsed as DeepStream does, a GLib key file ~ configparser)."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnx")
from typer.testing import CliRunner  # noqa: E402

from edgecv.cli import app  # noqa: E402
from edgecv.deploy.deepstream import DeepStreamConfig, write_deepstream  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402


def read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    return parser


def test_detector_onnx(artifacts: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    result = write_deepstream(artifacts["det"], tmp_path / "ds" / "det.txt", DeepStreamConfig(conf=0.3))
    p = read(result.config)["property"]
    assert (result.config.parent / p["onnx-file"]).resolve() == artifacts["det"].resolve()
    assert p["network-mode"] == "0" and p["network-type"] == "0" and p["num-detected-classes"] == "4"
    assert p["batch-size"] == "1" and p["infer-dims"] == "3;256;256" and p["cluster-mode"] == "2"
    assert float(p["net-scale-factor"]) == pytest.approx(1 / 255) and p["model-color-format"] == "0" and p["symmetric-padding"] == "1"
    assert (result.config.parent / p["labelfile-path"]).read_text().split() == ["circle", "rectangle", "triangle", "star"]
    assert "parse-bbox-func-name" not in p and any("no built-in parser for the yolov8" in n for n in result.notes)
    assert read(result.config)["class-attrs-all"]["pre-cluster-threshold"] == "0.3"


def test_in_graph_nms_turns_clustering_off(artifacts: dict[str, Path], tmp_path: Path) -> None:
    p = read(write_deepstream(artifacts["det_nms"], tmp_path / "c.txt", DeepStreamConfig()).config)["property"]
    assert p["cluster-mode"] == "4" and p["parse-bbox-func-name"] == "NvDsInferParseCustomEfficientNMSTLT"
    assert p["output-blob-names"] == "num_dets;boxes;scores;classes"


def test_segmenter_engine_and_precisions(artifacts: dict[str, Path], tmp_path: Path) -> None:
    seg = read(write_deepstream(artifacts["seg"], tmp_path / "s.txt", DeepStreamConfig()).config)["property"]
    assert seg["network-type"] == "2" and seg["num-detected-classes"] == "5" and "cluster-mode" not in seg
    fp16 = read(write_deepstream(artifacts["engine_fp16"], tmp_path / "e.txt", DeepStreamConfig(batch_size=4)).config)["property"]
    assert fp16["network-mode"] == "2" and fp16["batch-size"] == "4" and "onnx-file" not in fp16
    assert (tmp_path / fp16["model-engine-file"]).resolve() == artifacts["engine_fp16"].resolve()
    int8 = read(write_deepstream(artifacts["engine_int8"], tmp_path / "i.txt", DeepStreamConfig()).config)["property"]
    assert int8["network-mode"] == "1" and (tmp_path / int8["int8-calib-file"]).name == "det.calib"
    qdq = read(write_deepstream(artifacts["det_int8"], tmp_path / "q.txt", DeepStreamConfig()).config)["property"]
    assert qdq["network-mode"] == "1"
    result = write_deepstream(artifacts["engine_qdq"], tmp_path / "qe.txt", DeepStreamConfig())
    qe = read(result.config)["property"]
    assert qe["network-mode"] == "1" and "int8-calib-file" not in qe and any("Q/DQ" in n for n in result.notes)
    with pytest.raises(ConfigError, match="batch range"):
        write_deepstream(artifacts["engine"], tmp_path / "x.txt", DeepStreamConfig(batch_size=9))  # built 1:4:8


def test_implicit_int8_needs_a_cache(artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration cache"):
        write_deepstream(artifacts["seg"], tmp_path / "a.txt", DeepStreamConfig(int8=True))
    model = Path(shutil.copy(artifacts["det"], tmp_path / "m.onnx"))
    (tmp_path / "m.calib").write_bytes((artifacts["det"].parent / "det.calib").read_bytes())
    p = read(write_deepstream(model, tmp_path / "m.txt", DeepStreamConfig(int8=True)).config)["property"]
    assert p["network-mode"] == "1" and p["int8-calib-file"] == "m.calib"


def test_cli(artifacts: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "deepstream", str(artifacts["det_nms"]), "-o", str(tmp_path / "cfg.txt")])
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "cfg.txt")["property"]["cluster-mode"] == "4"
    result = CliRunner().invoke(app, ["deploy", "deepstream", str(artifacts["det"]), "--custom-lib", "lib.so"])
    assert result.exit_code == 2 and "go together" in result.output
