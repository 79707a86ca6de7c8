"""Render a :class:`~edgecv.bench.records.BenchReport`: rich tables, summary lines, JSON, CSV and a PNG plot.

Only rich and the standard library are imported here; matplotlib is imported inside
:func:`write_plot` (the ``plot`` extra). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edgecv._optional import require
from edgecv.artifact import atomic_write_bytes
from edgecv.bench.records import BENCH_STAGES, PERCENTILES, BenchReport, ModelBench

SCHEMA_FILE = "bench.schema.json"
ERROR_WIDTH = 60
# accuracy["metric"] -> display name
METRIC_LABELS = {"map": "mAP", "miou": "mIoU"}
CSV_STAGE_FIELDS = ("mean", *(f"p{q:g}" for q in PERCENTILES))


# --------------------------------------------------------------------------- helpers


def _label(r: ModelBench) -> str:
    """Display name of a row: ``name``, else the model file name."""
    return r.name or Path(r.model).name


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    """Format a number, ``"-"`` for None/NaN/inf."""
    return "-" if value is None or not math.isfinite(value) else fmt.format(value)


def _short(text: str | None, width: int = ERROR_WIDTH) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, ``…`` when cut)."""
    flat = re.sub(r"\s+", " ", text or "").strip()
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def _metric(r: ModelBench) -> tuple[str, float | None] | None:
    """(display name, value) of the row's headline accuracy metric, or None."""
    if not r.accuracy or "metric" not in r.accuracy:
        return None
    name = str(r.accuracy["metric"])
    value = r.accuracy.get("value")
    return METRIC_LABELS.get(name.lower(), name), (None if value is None else float(value))


def reference_row(report: BenchReport, batch: int) -> ModelBench | None:
    """The row speed-ups at ``batch`` are relative to: the first ok row with e2e samples at that batch
    (as :mod:`edgecv.bench.latency` picks it), or the one named by ``config["reference"]`` (model or name)."""
    rows = [r for r in report.results if r.ok and r.batch == batch and r.stages["e2e"].count]
    ref = report.config.get("reference")
    named = [r for r in rows if ref is not None and str(ref) in (r.model, r.name)]
    return (named or rows or [None])[0]


def _multi_batch(report: BenchReport) -> bool:
    return len({r.batch for r in report.results}) > 1


# --------------------------------------------------------------------------- tables


def render_table(report: BenchReport) -> Table:
    """One row per (model, batch): per-stage means, e2e percentiles, throughput, speed-up and accuracy.

    Failed rows show ``error`` in the latency columns and a pointer in the caption;
    the full error and its fix are :func:`error_lines`, printed below the table
    unwrapped (a table is as wide as the terminal, 80 columns in a log file).
    """
    n = len({r.model for r in report.results})
    table = Table(title=f"edgecv bench: {n} model{'s' if n != 1 else ''}", title_justify="left")
    with_acc = any(_metric(r) for r in report.results)
    table.add_column("model", no_wrap=True)
    for header in ("batch", "backend", "precision"):
        table.add_column(header)
    for header in ("pre ms", "infer ms", "post ms", "e2e p50", "e2e p90", "e2e p99", "img/s", "speed-up"):
        table.add_column(header, justify="right")
    if with_acc:
        table.add_column("accuracy", justify="right")
        table.add_column("Δ pts", justify="right")
    errors: list[str] = []
    for r in report.results:
        head = [_label(r), str(r.batch), r.backend or "-", r.precision or "-"]
        if r.ok:
            s = r.stages
            cells = [_num(s[k].mean) for k in ("pre", "infer", "post")]
            cells += [_num(s["e2e"].percentile(q)) for q in (50, 90, 99)]
            cells += [_num(r.throughput_fps, "{:.1f}"), _num(r.speedup, "{:.2f}x")]
        else:
            cells = ["[bold red]error[/]", *(["-"] * 7)]
            errors.append(f"[red]error[/] {_label(r)} (batch {r.batch}): {_short(r.error) or 'unknown error'} (see below)")
        if with_acc:
            m = _metric(r)
            cells += ["-" if m is None else f"{m[0]} {_num(m[1], '{:.3f}')}", _num(r.accuracy_delta, "{:+.1f}")]
        table.add_row(*head, *cells)
    if errors:
        table.caption = "\n".join(errors)
        table.caption_justify = "left"
    return table


def error_lines(report: BenchReport) -> list[str]:
    """Full text of every failed row: ``error: MODEL (batch N): message`` and ``  fix: hint`` (plain text)."""
    lines: list[str] = []
    for r in report.results:
        if r.ok:
            continue
        message = re.sub(r"\s+", " ", r.error or "unknown error").strip()
        lines.append(f"error: {r.model} (batch {r.batch}): {message}")
        if r.hint:
            lines.append(f"  fix: {r.hint}")
    return lines


def render_loop_table(report: BenchReport) -> Table | None:
    """The run-loop benchmark (loop FPS vs bare inference FPS), or None when there is none."""
    if not report.loop:
        return None
    table = Table(title="run loop vs bare inference", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("source")
    for header in ("frames", "loop threads", "in flight", "bare FPS", "loop FPS", "ratio"):
        table.add_column(header, justify="right")
    for lb in report.loop:
        table.add_row(
            Path(lb.model).name,
            lb.source,
            str(lb.frames),
            "-" if lb.threads is None else str(lb.threads),
            str(lb.inflight),
            _num(lb.bare_fps, "{:.1f}") + (f" ({lb.bare_kind})" if lb.bare_kind else ""),
            _num(lb.loop_fps, "{:.1f}"),
            _num(lb.ratio, "{:.2f}"),
        )
    table.caption = (
        "one process, bare (the faster of ONNX Runtime's defaults and edgecv's) and loop (run's thread policy) alternating, "
        "warm caches, no start-up; separate processes, as users run them: scripts/bench_run_vs_bare.py"
    )
    table.caption_justify = "left"
    return table


def summary_lines(report: BenchReport) -> list[str]:
    """One line per non-reference ok row, e.g. ``"int8: 2.13x faster than fp32, -0.6 mAP"``."""
    multi = _multi_batch(report)
    lines: list[str] = []
    for r in report.results:
        ref = reference_row(report, r.batch)
        if not r.ok or ref is None or r is ref:
            continue
        name = f"{_label(r)} (batch {r.batch})" if multi else _label(r)
        ref_name = _label(ref)
        s = r.speedup
        if s is None or not math.isfinite(s) or s <= 0:
            line = f"{name}: speed-up vs {ref_name} n/a"
        elif s >= 1:
            line = f"{name}: {s:.2f}x faster than {ref_name}"
        else:  # "2.00x slower" reads right; "0.50x slower" would not
            line = f"{name}: {1 / s:.2f}x slower than {ref_name}"
        m = _metric(r) or _metric(ref)
        if r.accuracy_delta is not None and math.isfinite(r.accuracy_delta):
            line += f", {r.accuracy_delta:+.1f} {m[0] if m else 'points'}"
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- files


def _finite(obj: Any) -> Any:
    """Copy of ``obj`` with NaN/inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def to_json(report: BenchReport) -> str:
    """The ``--json`` document: ``report.to_dict()`` as strict JSON (NaN/inf written as null)."""
    return json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False)


def write_json(report: BenchReport, path: Path) -> Path:
    """Write :func:`to_json` to ``path`` atomically (ConfigError when the folder is missing or unwritable)."""
    return atomic_write_bytes(Path(path), (to_json(report) + "\n").encode("utf-8"))


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the ``--json`` document, from the package data."""
    text = resources.files("edgecv.bench").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def csv_fields() -> list[str]:
    """CSV header: identity columns, ``<stage>_<stat>_ms`` per stage, then throughput/speed-up/accuracy."""
    stage_cols = [f"{s}_{f}_ms" for s in BENCH_STAGES for f in CSV_STAGE_FIELDS]
    return [
        *("model", "name", "batch", "backend", "precision", "status", "error"),
        *stage_cols,
        *("throughput_fps", "speedup", "accuracy_metric", "accuracy_value", "accuracy_delta"),
    ]


def write_csv(report: BenchReport, path: Path) -> Path:
    """One flat row per (model, batch), values as in the JSON (empty cell for null); written atomically."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=csv_fields())
    writer.writeheader()
    for r in report.results:
        d = _finite(r.to_dict())
        row: dict[str, Any] = {k: d[k] for k in ("model", "name", "batch", "backend", "precision", "status")}
        row["error"] = d["error"]
        for s in BENCH_STAGES:
            for f in CSV_STAGE_FIELDS:
                row[f"{s}_{f}_ms"] = d["stages_ms"].get(s, {}).get(f)
        acc = d["accuracy"] or {}
        row.update(
            throughput_fps=d["throughput_fps"],
            speedup=d["speedup"],
            accuracy_metric=acc.get("metric"),
            accuracy_value=acc.get("value"),
            accuracy_delta=d["accuracy_delta"],
        )
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def write_plot(report: BenchReport, path: Path) -> Path:
    """PNG with two panels: e2e latency per ok row (box plot), then latency vs accuracy or throughput bars.

    Needs the ``plot`` extra. Draws on a standalone Agg figure (no pyplot), so the
    caller's matplotlib backend and global figure state are left alone.
    """
    require("matplotlib", extra="plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in report.results if r.ok and r.stages["e2e"].count]
    labels = [f"{_label(r)}\nbatch {r.batch}" for r in rows]
    fig = Figure(figsize=(max(8.0, 1.6 * len(rows) + 4.0), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    fig.suptitle(f"edgecv bench ({report.created})")

    ax1.set_title("end-to-end latency per batch")
    ax1.set_ylabel("ms")
    if rows:
        ax1.boxplot([r.stages["e2e"].values for r in rows], showfliers=True)
        ax1.set_xticks(range(1, len(rows) + 1), labels, fontsize=8)
    else:
        ax1.text(0.5, 0.5, "no successful runs", ha="center", va="center", transform=ax1.transAxes)

    acc_rows = [(r, m) for r in rows if (m := _metric(r)) is not None and m[1] is not None]
    if acc_rows:
        names = sorted({m[0] for _, m in acc_rows})
        ax2.set_title("latency vs accuracy")
        ax2.set_xlabel("e2e p50 (ms)")
        ax2.set_ylabel(" / ".join(names))
        ax2.margins(0.2)  # room for the point labels
        for r, (_, value) in acc_rows:
            x = r.stages["e2e"].percentile(50)
            ax2.scatter([x], [value])
            ax2.annotate(f"{_label(r)} b{r.batch}", (x, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    else:
        ax2.set_title("throughput")
        ax2.set_ylabel("images / s")
        if rows:
            ax2.bar(range(len(rows)), [r.throughput_fps or 0.0 for r in rows])
            ax2.set_xticks(range(len(rows)), labels, fontsize=8)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(Path(path), buf.getvalue())
