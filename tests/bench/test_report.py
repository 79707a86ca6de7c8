"""Bench reports: rich tables, summary lines, JSON against its schema, CSV, PNG plot, and their errors."""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edgecv.bench.records import BENCH_STAGES, BenchReport, LoopBench, ModelBench
from edgecv.bench.report import (
    csv_fields,
    load_schema,
    render_loop_table,
    render_table,
    summary_lines,
    to_json,
    write_csv,
    write_json,
    write_plot,
)
from edgecv.errors import ConfigError, MissingDependencyError

LONG_ERROR = "EngineError: cannot load broken.onnx: " + "protobuf parsing failed " * 6


def _row(model: str, name: str, e2e: list[float], *, batch: int = 1, precision: str = "fp32", **kw) -> ModelBench:
    """A ModelBench whose pre/infer/post are fixed fractions of the given e2e samples."""
    r = ModelBench(
        model=model,
        name=name,
        batch=batch,
        backend="onnxruntime",
        task="detect",
        precision=precision,
        input_shape=[batch, 3, 640, 640],
        threads=4,
        **kw,
    )
    e = np.asarray(e2e, dtype=np.float64)
    for stage, frac in (("pre", 0.2), ("infer", 0.7), ("post", 0.1)):
        r.stages[stage].extend(e * frac)
    r.stages["e2e"].extend(e)
    return r


@pytest.fixture
def report() -> BenchReport:
    fp32 = _row(
        "m/yolo_fp32.onnx",
        "fp32",
        [10.0, 10.0, 10.0, 12.0, 20.0],
        speedup=1.0,
        accuracy={"metric": "map", "value": 0.837, "map": 0.837, "map50": 0.95},
        accuracy_delta=0.0,
    )
    int8 = _row(
        "m/yolo_int8.onnx",
        "int8",
        [4.0, 5.0, 5.0, 5.0, 6.0],
        precision="int8",
        speedup=2.0,
        accuracy={"metric": "map", "value": 0.831, "map": 0.831, "map50": 0.94},
        accuracy_delta=-0.6,
    )
    slow = _row("m/yolo_big.onnx", "big", [40.0, 40.0, 40.0], speedup=0.25)  # no accuracy on this row
    bad = ModelBench(model="m/broken.onnx", name="broken", status="error", error=LONG_ERROR)
    loop = LoopBench(
        model="m/yolo_int8.onnx", source="video.mp4", frames=300, threads=2, bare_fps=200.0, loop_fps=180.0
    )
    return BenchReport(
        environment={"python": "3.11", "cpu": "test"},
        config={"warmup": 5, "iters": 5},
        results=[fp32, int8, slow, bad],
        loop=[loop],
        created="2025-01-01T00:00:00+00:00",
    )


def _text(renderable) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------------- tables


def test_table_shows_values_speedups_accuracy_and_errors(report: BenchReport) -> None:
    text = _text(render_table(report))
    assert "edgecv bench: 4 models" in text
    for s in ("fp32", "int8", "big", "broken", "onnxruntime"):
        assert s in text
    # fp32 e2e [10, 10, 10, 12, 20]: p50 10.00; mean infer = 0.7 * 12.4 = 8.68; throughput 1000 / 12.4
    assert "10.00" in text and "8.68" in text and "80.6" in text
    assert "1.00x" in text and "2.00x" in text and "0.25x" in text
    assert "mAP 0.837" in text and "mAP 0.831" in text and "-0.6" in text and "+0.0" in text
    assert "error" in text and "EngineError: cannot load broken.onnx" in text
    assert "…" in text and LONG_ERROR.strip() not in text  # shortened to ~60 characters


def test_table_without_accuracy_has_no_accuracy_columns(report: BenchReport) -> None:
    for r in report.results:
        r.accuracy, r.accuracy_delta = None, None
    text = _text(render_table(report))
    assert "accuracy" not in text and "mAP" not in text


def test_table_of_empty_report_renders() -> None:
    empty = BenchReport(environment={}, config={})
    assert "edgecv bench: 0 models" in _text(render_table(empty))
    assert render_loop_table(empty) is None


def test_loop_table(report: BenchReport) -> None:
    text = _text(render_loop_table(report))
    assert "video.mp4" in text and "300" in text and "200.0" in text and "180.0" in text and "0.90" in text


# --------------------------------------------------------------------------- summary


def test_summary_lines(report: BenchReport) -> None:
    assert summary_lines(report) == [
        "int8: 2.00x faster than fp32, -0.6 mAP",
        "big: 4.00x slower than fp32",
    ]


def test_summary_reference_from_config_and_batches() -> None:
    rows = [
        _row("m/fp32.onnx", "fp32", [10.0], speedup=0.5, accuracy={"metric": "miou", "value": 0.9}, accuracy_delta=0.2),
        _row("m/int8.onnx", "int8", [5.0], speedup=1.0, accuracy={"metric": "miou", "value": 0.898}),
        _row("m/fp32.onnx", "fp32", [40.0], batch=8, speedup=0.5),
        _row("m/int8.onnx", "int8", [20.0], batch=8, speedup=1.0),
        ModelBench(model="m/broken.onnx", name="broken", status="error", error="boom"),
    ]
    rep = BenchReport(environment={}, config={"reference": "m/int8.onnx"}, results=rows)
    assert summary_lines(rep) == [
        "fp32 (batch 1): 2.00x slower than int8, +0.2 mIoU",
        "fp32 (batch 8): 2.00x slower than int8",
    ]


def test_summary_skips_a_failed_first_row_as_reference() -> None:
    rows = [
        ModelBench(model="m/broken.onnx", name="broken", status="error", error="boom"),
        _row("m/fp32.onnx", "fp32", [10.0], speedup=1.0),
        _row("m/fp16.onnx", "fp16", [5.0], speedup=2.0),
    ]
    rep = BenchReport(environment={}, config={}, results=rows)
    assert summary_lines(rep) == ["fp16: 2.00x faster than fp32"]


# --------------------------------------------------------------------------- JSON + schema


def test_json_validates_against_schema(report: BenchReport, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = write_json(report, tmp_path / "bench.json")
    doc = json.loads(path.read_text())
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["schema"] == "edgecv.bench/1"
    assert doc["results"][0]["stages_ms"]["e2e"]["p50"] == 10.0
    assert doc["results"][3]["status"] == "error" and doc["results"][3]["error"] == LONG_ERROR
    assert doc["loop"][0]["ratio"] == 0.9


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["results"][0].update(status="maybe"),
        lambda d: d.update(schema="edgecv.bench/2"),
        lambda d: d["results"][0]["stages_ms"]["e2e"].pop("p99"),
        lambda d: d["results"][0]["stages_ms"]["pre"].update(mean="fast"),
        lambda d: d["results"][3].update(error=None),  # an error row must say why
        lambda d: d["loop"][0].pop("loop_fps"),
        lambda d: d["results"][1].update(extra=1),
    ],
)
def test_invalid_documents_fail(report: BenchReport, mutate) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(to_json(report))
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema(), cls=jsonschema.Draft202012Validator)


def test_json_is_strict_with_empty_stats_and_nan(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    empty = ModelBench(model="m/a.onnx", speedup=math.nan, accuracy={"metric": "miou", "value": np.float64("nan")})
    rep = BenchReport(environment={"x": math.inf}, config={}, results=[empty])
    text = write_json(rep, tmp_path / "b.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["results"][0]["stages_ms"]["e2e"] == {
        "count": 0,
        **{k: None for k in ("mean", "std", "min", "max", "p50", "p90", "p95", "p99")},
    }
    assert doc["results"][0]["speedup"] is None and doc["results"][0]["throughput_fps"] is None
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)


def test_write_json_missing_folder_is_config_error(report: BenchReport, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        write_json(report, tmp_path / "nope" / "bench.json")
    with pytest.raises(ConfigError):
        write_csv(report, tmp_path / "nope" / "bench.csv")


# --------------------------------------------------------------------------- CSV


def test_csv_header_and_rows(report: BenchReport, tmp_path: Path) -> None:
    path = write_csv(report, tmp_path / "bench.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == csv_fields()
    assert reader.fieldnames[:7] == ["model", "name", "batch", "backend", "precision", "status", "error"]
    for s in BENCH_STAGES:
        assert all(f"{s}_{k}_ms" in reader.fieldnames for k in ("mean", "p50", "p90", "p95", "p99"))
    assert reader.fieldnames[-5:] == [
        "throughput_fps",
        "speedup",
        "accuracy_metric",
        "accuracy_value",
        "accuracy_delta",
    ]
    assert len(rows) == 4
    fp32, int8, big, bad = rows
    assert fp32["model"] == "m/yolo_fp32.onnx" and float(fp32["e2e_p50_ms"]) == 10.0
    assert float(fp32["e2e_mean_ms"]) == pytest.approx(12.4)
    assert int8["accuracy_metric"] == "map" and float(int8["accuracy_value"]) == 0.831
    assert float(int8["accuracy_delta"]) == -0.6 and float(int8["speedup"]) == 2.0
    assert big["accuracy_metric"] == "" and big["accuracy_delta"] == ""
    assert bad["status"] == "error" and bad["error"] == LONG_ERROR and bad["e2e_p50_ms"] == ""


# --------------------------------------------------------------------------- plot


@pytest.mark.parametrize("with_accuracy", [True, False])
def test_plot_writes_png(report: BenchReport, tmp_path: Path, with_accuracy: bool) -> None:
    pytest.importorskip("matplotlib")
    if not with_accuracy:
        for r in report.results:
            r.accuracy = None
    path = write_plot(report, tmp_path / "bench.png")
    assert path == tmp_path / "bench.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]  # no temp file left behind


def test_plot_of_all_failed_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rep = BenchReport(environment={}, config={}, results=[ModelBench(model="a.onnx", status="error", error="x")])
    assert write_plot(rep, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib(report: BenchReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"edgecv\[plot\]"):
        write_plot(report, tmp_path / "bench.png")
    assert not (tmp_path / "bench.png").exists()


def test_plot_missing_folder_is_config_error(report: BenchReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ConfigError):
        write_plot(report, tmp_path / "nope" / "bench.png")
