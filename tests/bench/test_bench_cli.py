"""`edgecv bench` from the command line: table, JSON (schema-checked), CSV, failures, bad options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecv.cli import app

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_bench_two_models_and_a_broken_one(det_onnx: Path, seg_onnx: Path, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from edgecv.bench.report import load_schema

    out_json, out_csv = tmp_path / "bench.json", tmp_path / "bench.csv"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    result = invoke("bench", det_onnx, broken, seg_onnx, "-n", 5, "--warmup", 1, "--threads", 1, "--json", out_json, "--csv", out_csv)
    assert result.exit_code == 0, result.output
    assert "shapes-det.onnx" in result.output and "error" in result.output
    doc = json.loads(out_json.read_text())
    jsonschema.validate(doc, load_schema())
    assert [r["status"] for r in doc["results"]] == ["ok", "error", "ok"]
    assert doc["results"][0]["stages_ms"]["e2e"]["count"] == 5 and doc["results"][0]["speedup"] == 1.0
    assert doc["environment"]["versions"]["onnxruntime"]
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]


def test_bench_with_accuracy_and_loop(det_onnx: Path, shapes_val: Path, demo_video: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "b.json"
    result = invoke(
        "bench", det_onnx, "-n", 3, "--warmup", 0, "--data", shapes_val, "--max-images", 4,
        "--loop", "--source", demo_video, "--repeats", 1, "--json", out_json,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out_json.read_text())
    assert doc["results"][0]["accuracy"]["metric"] == "map"
    assert doc["loop"][0]["frames"] == 24 and doc["loop"][0]["ratio"] > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-n", "0"), 2, "--iterations must be positive"),
        (("--batch", "0"), 2, "batch sizes must be >= 1"),
        (("--json", "no/such/dir/b.json"), 2, "does not exist"),
        (("--loop",), 2, "--loop needs --source"),
    ],
)
def test_bench_bad_options(det_onnx: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = invoke("bench", det_onnx, *args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_bench_fails_when_no_model_runs(tmp_path: Path) -> None:
    result = invoke("bench", tmp_path / "missing.onnx", "-n", 1)
    assert result.exit_code == 4 and "model file not found" in result.output  # the exit code of a missing model (EXIT_CODES)
