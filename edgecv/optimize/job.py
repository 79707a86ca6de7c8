"""``edgecv prune``: prune (fixed ratio or to a measured speed-up), optionally 2:4-sparsify, fine-tune, report.

Every number in the report is measured, not estimated: latency by exporting to ONNX and
running ``edgecv bench``'s interleaved ``benchmark()`` against the unpruned model,
accuracy by ``edgecv eval``'s evaluator on held-out images. MACs are reported too,
because they are what pruning tools optimise, and they are not latency.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv._optional import require
from edgecv.artifact import atomic_write_bytes
from edgecv.errors import ArtifactError, ConfigError
from edgecv.log import StageFn, no_stages

log = logging.getLogger(__name__)

SPARSITY = ("2:4",)


@dataclass(frozen=True)
class PruneOptions:
    """Options of ``edgecv prune`` (see its ``--help``)."""

    ratio: float | None = None
    target_speedup: float | None = None
    step: float = 0.1
    max_ratio: float = 0.8
    importance: str = "l2"
    global_pruning: bool = False
    round_to: int | None = 8
    ignore: tuple[str, ...] = ()
    sparsity: str | None = None
    finetune_epochs: int = 20
    finetune_pool: int = 800
    finetune_lr: float = 1e-3
    distill: float = 1.0  # weight of distillation from the unpruned model during fine-tuning (0: off)
    val: Path | None = None
    val_images: int = 100
    bench_iterations: int = 100
    exporter: str = "dynamo"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ratio is None and self.target_speedup is None and self.sparsity is None:
            raise ConfigError("nothing to do", hint="pass --ratio R, --target-speedup S and/or --sparsity 2:4")
        if self.ratio is not None and self.target_speedup is not None:
            raise ConfigError("--ratio and --target-speedup both choose the pruning ratio", hint="pass one of them")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ConfigError(f"the pruning ratio must be in (0, 1), got {self.ratio}", hint="e.g. --ratio 0.3 removes 30% of the channels")
        if self.target_speedup is not None and self.target_speedup <= 1:
            raise ConfigError(f"--target-speedup must be > 1, got {self.target_speedup}", hint="e.g. --target-speedup 1.3")
        if not 0 < self.step < 1 or not 0 < self.max_ratio < 1:
            raise ConfigError("--step and --max-ratio must be in (0, 1)")
        if self.sparsity not in (None, *SPARSITY):
            raise ConfigError(f"unknown sparsity {self.sparsity!r}", hint="use --sparsity 2:4")
        if self.finetune_epochs < 0 or self.val_images < 1 or self.bench_iterations < 1:
            raise ConfigError("--finetune-epochs must be >= 0, --val-images and --bench-iterations >= 1")


@dataclass
class Stage:
    """One model in the report: params, MACs, measured latency and accuracy."""

    name: str
    ratio: float
    params: int
    macs: int
    infer_ms: float | None = None
    e2e_ms: float | None = None
    speedup: float | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("infer_ms", "e2e_ms", "speedup", "score"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        return data


@dataclass
class PruneReport:
    source: Path
    arch: str
    checkpoint: Path
    onnx: Path
    metric: str | None
    stages: list[Stage]
    curve: list[Stage] = field(default_factory=list)
    sparsity: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "arch": self.arch,
            "checkpoint": str(self.checkpoint),
            "onnx": str(self.onnx),
            "metric": self.metric,
            "stages": [s.to_dict() for s in self.stages],
            "curve": [s.to_dict() for s in self.curve],
            "sparsity": self.sparsity,
            "options": self.options,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


def resolve_source(source: str | Path) -> Path:
    """A checkpoint path, or a shipped model name (``shapes-det`` -> its ``.pt``).

    Raises:
        ConfigError: an ONNX/engine file (pruning needs the PyTorch weights) or nothing found.
    """
    from edgecv import assets

    path = Path(source)
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):
        raise ConfigError(
            f"{path.name} is an exported model: channels cannot be removed from an ONNX/TensorRT file",
            hint="prune before export: pass the PyTorch checkpoint (.pt), e.g. `edgecv prune models/shapes-det.pt`",
        )
    if path.exists():
        return path
    shipped = assets.models_dir() / f"{source}.pt"
    if shipped.exists():
        return shipped
    raise ArtifactError(f"{source} not found", hint="pass an edgecv checkpoint (.pt) or a shipped model name (shapes-det, shapes-seg)")


def default_output(source: str | Path, path: Path) -> Path:
    """``X.pruned.pt`` next to a given file; in the working folder for a shipped name."""
    stem = path.name.removesuffix(".pt")
    return (path.parent if Path(source).exists() else Path.cwd()) / f"{stem}.pruned.pt"


class _Workbench:
    """Exports, scores and times models for one prune run (a scratch folder, one held-out set)."""

    def __init__(self, info: dict[str, Any], arch: Any, options: PruneOptions, stages: StageFn) -> None:
        self.info, self.arch, self.options, self.stages = info, arch, options, stages
        self.tmp = tempfile.TemporaryDirectory(prefix="edgecv-prune-")
        self.root = Path(self.tmp.name)
        self.count = 0
        self.dataset = self._held_out()

    def close(self) -> None:
        self.tmp.cleanup()

    def _held_out(self) -> Any:
        from edgecv.data.datasets import open_dataset

        if self.options.val is not None:
            return open_dataset(self.options.val)
        if self.arch.name.startswith("shapes-"):
            from edgecv.data.synthetic import write_coco_dataset

            folder = self.root / "val"
            write_coco_dataset(folder, self.options.val_images, seed=1234)  # the shipped models' held-out seed
            return open_dataset(folder)
        log.warning("no --val data: accuracy is not measured (pass a labelled dataset with --val)")
        return None

    @property
    def metric(self) -> str | None:
        if self.dataset is None:
            return None
        return "mAP50-95" if self.arch.task == "detect" else "mIoU"

    def save(self, model: Any, path: Path, structure: dict[str, Any]) -> Path:
        from edgecv.zoo.checkpoint import save_checkpoint

        return save_checkpoint(
            model, path, arch=self.info["arch"], names=tuple(self.info["names"]), width=float(self.info.get("width", 1.0)),
            structure=structure, **{k: v for k, v in self.info.get("info", {}).items() if k != "pruning"},
        )  # fmt: skip

    def export(self, checkpoint: Path, dest: Path | None = None, *, exporter: str | None = None) -> Path:
        from edgecv.export import ExportConfig, export_model

        self.count += 1
        dest = dest or self.root / f"m{self.count}.onnx"
        export_model(checkpoint, dest, ExportConfig(exporter=exporter or self.options.exporter))
        return dest

    def score(self, onnx_path: Path) -> float | None:
        if self.dataset is None:
            return None
        import edgecv
        from edgecv.bench.accuracy import evaluate

        with edgecv.load(onnx_path, conf=0.001, iou=0.6, threads=self.options.threads) as model:
            metrics = evaluate(model, self.dataset)
        return 100.0 * (metrics.map if self.arch.task == "detect" else metrics.miou)

    def latency(self, paths: list[Path], description: str) -> list[tuple[float, float, float | None]]:
        """(infer p50 ms, e2e p50 ms, speed-up vs the first) per path, measured interleaved in one run."""
        from edgecv.bench.latency import BenchConfig, benchmark, synthetic_frames

        cfg = BenchConfig(warmup=10, iterations=self.options.bench_iterations, threads=self.options.threads)
        report = benchmark([str(p) for p in paths], cfg, synthetic_frames(16), progress=self.stages(description, None))
        rows = []
        for record in report.results:
            if not record.ok:
                raise ConfigError(f"benchmarking {record.model} failed: {record.error}")
            rows.append((record.stages["infer"].p50, record.stages["e2e"].p50, record.speedup))
        return rows


def run_prune(
    source: str | Path,
    options: PruneOptions,
    *,
    output: Path | None = None,
    stages: StageFn | None = None,
) -> PruneReport:
    """Prune an edgecv checkpoint, measure each stage, and write ``output`` (.pt), its .onnx and a .json report.

    Raises:
        ConfigError: bad options, an ONNX input, or a missing file.
        ExportError: Torch-Pruning cannot trace the model (the layer is named).
    """
    torch = require("torch")
    require("torch_pruning", extra="export")
    from edgecv.optimize.prune import MaskHolder, apply_2_4, onnx_2_4_report, prune
    from edgecv.optimize.structure import params_and_macs, structure_of
    from edgecv.zoo.checkpoint import load_checkpoint
    from edgecv.zoo.registry import get_architecture

    stages = stages or no_stages
    seconds: dict[str, float] = {}
    path = resolve_source(source)
    output = Path(output) if output is not None else default_output(source, path)
    if output.suffix != ".pt":
        raise ConfigError(f"the output is a PyTorch checkpoint; name it .pt, got {output.name}")
    model, info = load_checkpoint(path)
    arch = get_architecture(info["arch"])
    example = torch.zeros(1, 3, *arch.input_size)
    torch.manual_seed(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    bench = _Workbench(info, arch, options, stages)
    try:
        clock = time.perf_counter()
        params, macs = params_and_macs(model, example)
        original = Stage("original", 0.0, params, macs)
        original_onnx = bench.export(path)
        original.score = bench.score(original_onnx)
        seconds["baseline"] = time.perf_counter() - clock

        clock = time.perf_counter()
        curve: list[Stage] = []
        ratio = options.ratio or 0.0
        pruned = copy.deepcopy(model)
        prune_kwargs = dict(
            importance=options.importance, global_pruning=options.global_pruning, round_to=options.round_to, ignore=options.ignore,
            loss_fn=_taylor_loss(arch, options) if options.importance == "taylor" else None,
        )  # fmt: skip
        if options.target_speedup is not None:
            ratio, pruned, curve = _search_ratio(path, model, example, options, prune_kwargs, bench)
        elif options.ratio is not None:
            prune(pruned, example, ratio=options.ratio, **prune_kwargs)
        seconds["prune"] = time.perf_counter() - clock

        masks: dict[str, Any] = {}
        if options.sparsity == "2:4":
            masks = apply_2_4(pruned, ignore=options.ignore, example_input=example)
            log.info("2:4 sparsity on %d layers", len(masks))
        structure = structure_of(pruned)
        params, macs = params_and_macs(pruned, example)
        after_prune = Stage("pruned" + (" + 2:4" if masks else ""), ratio, params, macs)
        result_stages = [original, after_prune]
        tune = options.finetune_epochs > 0 and arch.name.startswith("shapes-")
        if options.finetune_epochs and not tune:
            log.warning(
                "built-in fine-tuning covers the shipped architectures; fine-tune %s in your own loop "
                "(edgecv.optimize.prune returns the pruned nn.Module)", arch.name,
            )  # fmt: skip
        final = pruned
        if tune:
            after_prune.score = bench.score(bench.export(bench.save(pruned, bench.root / "pruned.pt", structure)))
            clock = time.perf_counter()
            teacher = model.eval() if options.distill > 0 else None  # the unpruned model, untouched by pruning (a deep copy was pruned)
            final = _finetune(pruned, arch, info, options, MaskHolder(pruned, masks) if masks else None, stages, teacher)
            result_stages.append(Stage("fine-tuned", ratio, params, macs))
            seconds["fine-tune"] = time.perf_counter() - clock
        bench.save(final, output, structure)
        onnx_out = bench.export(output, output.with_suffix(".onnx"))
        result_stages[-1].score = bench.score(onnx_out)
        sparsity = None
        if masks:
            onnx = require("onnx")
            sparsity = {"pattern": "2:4", "layers": len(masks), **onnx_2_4_report(onnx.load(str(onnx_out)))}

        clock = time.perf_counter()
        # the pruned and fine-tuned models have the same layers, hence the same latency: time the final one
        timings = bench.latency([original_onnx, onnx_out], "latency (ONNX Runtime CPU)")
        for stage in result_stages:
            stage.infer_ms, stage.e2e_ms, stage.speedup = timings[0] if stage is original else timings[1]
        seconds["latency"] = time.perf_counter() - clock
    finally:
        bench.close()

    report = PruneReport(
        source=path, arch=arch.name, checkpoint=output, onnx=output.with_suffix(".onnx"), metric=bench.metric,
        stages=result_stages, curve=curve, sparsity=sparsity, seconds=seconds,
        options={k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
    )  # fmt: skip
    report.report_path = atomic_write_bytes(output.with_suffix(".json"), json.dumps(report.to_dict(), indent=2).encode())
    return report


def _taylor_loss(arch: Any, options: PruneOptions) -> Callable[[Any], Any]:
    if not arch.name.startswith("shapes-"):
        raise ConfigError("--importance taylor needs a loss; the CLI has one for the shipped architectures", hint="use l2, or the Python API with loss_fn")
    from edgecv.zoo.training import ScenePool, loss_on

    pool = ScenePool.generate(32, arch.input_size[0], options.seed + 7)
    return lambda model: loss_on(model, arch.task, pool, batches=4, batch=8, seed=options.seed)


def _search_ratio(
    source: Path, model: Any, example: Any, options: PruneOptions, prune_kwargs: dict[str, Any], bench: _Workbench
) -> tuple[float, Any, list[Stage]]:
    """Prune at step, 2*step, ... and measure; stop at the first ratio reaching the target or when latency stops improving."""
    from edgecv.optimize.prune import prune
    from edgecv.optimize.structure import params_and_macs, structure_of

    assert options.target_speedup is not None
    reference = bench.export(source, exporter="torchscript")  # steps use the fast exporter; the final model the chosen one
    curve: list[Stage] = []
    best: tuple[float, Any] | None = None
    best_speedup, stalls = 0.0, 0
    steps = max(1, int(math.floor(options.max_ratio / options.step + 1e-9)))
    for i in range(1, steps + 1):
        ratio = round(i * options.step, 6)
        candidate = prune(copy.deepcopy(model), example, ratio=ratio, **prune_kwargs)
        checkpoint = bench.save(candidate, bench.root / f"step{i}.pt", structure_of(candidate))
        onnx_path = bench.export(checkpoint, exporter="torchscript")
        (_, _, _), (infer, e2e, speedup) = bench.latency([reference, onnx_path], f"ratio {ratio:.2f}")
        params, macs = params_and_macs(candidate, example)
        point = Stage(f"ratio {ratio:.2f}", ratio, params, macs, infer, e2e, speedup, bench.score(onnx_path))
        curve.append(point)
        log.info("ratio %.2f: %.1f%% of MACs, %.2fx faster, score %s", ratio, 100 * macs / max(1, curve[0].macs), speedup or 0, point.score)
        if speedup is not None and speedup >= options.target_speedup:
            return ratio, candidate, curve
        if speedup is not None and speedup > best_speedup * 1.02:
            best_speedup, best, stalls = speedup, (ratio, candidate), 0
        else:
            stalls += 1
            if stalls >= 2:
                log.warning("latency stopped improving at ratio %.2f (%.2fx)", best[0] if best else ratio, best_speedup)
                break
    log.warning("target %.2fx not reached; the best was %.2fx", options.target_speedup, best_speedup)
    assert best is not None
    return best[0], best[1], curve


def _finetune(model: Any, arch: Any, info: dict[str, Any], options: PruneOptions, holder: Any, stages: StageFn, teacher: Any = None) -> Any:
    from edgecv.zoo.training import TrainConfig, train

    batch = 16
    iterations = options.finetune_epochs * max(1, math.ceil(options.finetune_pool / batch))
    cfg = TrainConfig(
        task=arch.task, iterations=iterations, batch=batch, lr=options.finetune_lr, warmup=min(20, iterations // 5),
        pool=options.finetune_pool, size=arch.input_size[0], seed=options.seed, threads=options.threads or 2,
        width=float(info.get("width", 1.0)), max_minutes=60,
    )  # fmt: skip
    if teacher is not None:
        for p in teacher.parameters():
            p.requires_grad_(False)
    return train(
        cfg, model=model, log_every=max(1, iterations // 5), after_step=holder, progress=stages("fine-tune", iterations),
        teacher=teacher, distill=options.distill,
    )  # fmt: skip
