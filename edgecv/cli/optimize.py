"""`edgecv prune`: structured channel pruning and 2:4 sparsity."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecv.cli.app import app, handle_errors, state
from edgecv.log import out

log = logging.getLogger("edgecv.cli")

# ---------------------------------------------------------------- prune
@app.command()
@handle_errors
def prune(
    model: Annotated[str, typer.Argument(help="edgecv checkpoint (.pt) or shipped model name (shapes-det, shapes-seg). Prune before export.")],
    ratio: Annotated[float | None, typer.Option(help="Share of channels to remove, in (0, 1).")] = None,
    target_speedup: Annotated[float | None, typer.Option(help="Latency-aware: prune in steps until ONNX Runtime measures this speed-up (e.g. 1.3).")] = None,
    step: Annotated[float, typer.Option(help="Ratio step of --target-speedup.")] = 0.1,
    max_ratio: Annotated[float, typer.Option(help="Largest ratio --target-speedup tries.")] = 0.8,
    importance: Annotated[str, typer.Option(help="l1, l2 (group magnitude), bn (BatchNorm scale), lamp, or taylor (gradients on shapes data).")] = "l2",
    global_pruning: Annotated[bool, typer.Option("--global", help="Rank channels across the whole network instead of per layer.")] = False,
    round_to: Annotated[int, typer.Option(help="Keep channel counts multiples of this (1: exact ratio).")] = 8,
    ignore: Annotated[str | None, typer.Option(help="Comma-separated layer-name globs never to prune (heads are protected already), e.g. 'stem.*'.")] = None,
    sparsity: Annotated[str | None, typer.Option(help="2:4: zero 2 of every 4 input-channel weights (sparse tensor cores, TensorRT --sparsity).")] = None,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tune epochs (50 steps of 16 scenes each) on synthetic shapes after pruning (shipped architectures); 0 skips.")] = 20,
    finetune_pool: Annotated[int, typer.Option(help="Scenes per fine-tune epoch.")] = 800,
    distill: Annotated[float, typer.Option(help="Weight of distillation from the unpruned model while fine-tuning (0: labels only).")] = 1.0,
    val: Annotated[Path | None, typer.Option(help="Held-out labelled dataset (default for shapes models: 100 synthetic images, seed 1234).")] = None,
    val_images: Annotated[int, typer.Option(help="Synthetic held-out images when --val is not given.")] = 100,
    bench_iterations: Annotated[int, typer.Option(help="Latency iterations per model.")] = 100,
    exporter: Annotated[str, typer.Option(help="torch.onnx exporter for the pruned ONNX: dynamo or torchscript.")] = "dynamo",
    threads: Annotated[int | None, typer.Option(help="Threads for ONNX Runtime and fine-tuning.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Pruned checkpoint (default MODEL.pruned.pt; .onnx and .json next to it).")] = None,
) -> None:
    """Prune channels (and/or 2:4 sparsify), fine-tune, and report params, MACs, measured latency and accuracy.

    Example: edgecv prune shapes-det --target-speedup 1.3
    """
    from edgecv._optional import require

    require("torch")
    require("torch_pruning")
    from edgecv.log import stage_progress
    from edgecv.optimize.job import PruneOptions, run_prune

    if output is not None:
        from edgecv.artifact import check_writable

        check_writable(output, "pruned checkpoint")
    options = PruneOptions(
        ratio=ratio, target_speedup=target_speedup, step=step, max_ratio=max_ratio, importance=importance,
        global_pruning=global_pruning, round_to=round_to if round_to > 1 else None,
        ignore=tuple(p for p in (ignore or "").replace(" ", "").split(",") if p), sparsity=sparsity,
        finetune_epochs=finetune_epochs, finetune_pool=finetune_pool, distill=distill, val=val, val_images=val_images,
        bench_iterations=bench_iterations, exporter=exporter, threads=threads,
    )  # fmt: skip
    with stage_progress(state["quiet"]) as stages:
        report = run_prune(model, options, output=output, stages=stages)
    _print_prune(report)


def _print_prune(report: Any) -> None:
    from rich.table import Table

    fmt = lambda v, spec=".2f": "-" if v is None else format(v, spec)  # noqa: E731
    if report.curve:
        curve = Table(title="ratio -> MACs, latency, accuracy (before fine-tune, fast exporter)", title_justify="left")
        for column in ("ratio", "params", "MACs", "infer p50 ms", "speed-up", report.metric or "score"):
            curve.add_column(column, justify="right")
        base = report.stages[0].macs
        for s in report.curve:
            curve.add_row(fmt(s.ratio), f"{s.params / 1e6:.3f} M", f"{s.macs / 1e9:.3f} G ({s.macs / base:.0%})", fmt(s.infer_ms), fmt(s.speedup, ".2f") + "x", fmt(s.score))
        out.print(curve)
    table = Table(title=f"{report.arch}: pruning report ({report.metric or 'accuracy not measured'})", title_justify="left")
    for column in ("stage", "ratio", "params", "MACs", "infer p50 ms", "e2e p50 ms", "speed-up", "score"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in report.stages:
        table.add_row(
            s.name, fmt(s.ratio), f"{s.params / 1e6:.3f} M", f"{s.macs / 1e9:.3f} G", fmt(s.infer_ms), fmt(s.e2e_ms),
            "-" if s.speedup is None else f"{s.speedup:.2f}x", fmt(s.score),
        )  # fmt: skip
    out.print(table)
    if report.sparsity:
        sp = report.sparsity
        out.print(f"2:4 sparsity: {sp['layers']} layers masked; exported ONNX: {sp['conv_2_4']} Conv weights hold 2:4, {sp['conv_dense']} dense")
    out.print(f"wrote {report.checkpoint}, {report.onnx} and {report.report_path}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- build-engine
