"""``edgecv calibrate``: FP32 ONNX + images -> INT8 Q/DQ ONNX (TensorRT and/or CPU), TensorRT cache, report.

Steps: split the images (calibration / held-out), collect activation statistics once,
derive ranges per method, build the Q/DQ graph per target, score each method on the
held-out images, run the accuracy gate when asked (``max_drop``), write the outputs
atomically, measure latency with ``edgecv bench``'s code, and write a JSON report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.artifact import ModelMeta, atomic_write_bytes
from edgecv.errors import ConfigError
from edgecv.log import StageFn, no_stages
from edgecv.quant import calib_data, qdq
from edgecv.quant.ranges import DEFAULT_PERCENTILE, METHODS, TensorStats

log = logging.getLogger(__name__)

TARGET_CHOICES = ("tensorrt", "cpu", "both")


@dataclass(frozen=True)
class CalibrateOptions:
    """Options of ``edgecv calibrate`` (see its ``--help``)."""

    num: int = 512
    method: str = "percentile"
    percentile: float = DEFAULT_PERCENTILE
    target: str = "tensorrt"
    max_drop: float | None = None
    holdout: float | int = 0.2
    val: Path | None = None
    every: int | None = None
    seed: int = 0
    keep_tail: bool = True
    cache: bool = True
    subset: int = 64
    bench_iterations: int = 50
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.method not in (*METHODS, "all"):
            raise ConfigError(f"unknown --method {self.method!r}", hint=f"use one of {', '.join(METHODS)} or all")
        if self.target not in TARGET_CHOICES:
            raise ConfigError(f"unknown --target {self.target!r}", hint=f"use one of {', '.join(TARGET_CHOICES)}")
        if self.max_drop is not None and self.max_drop < 0:
            raise ConfigError(f"--max-drop must be >= 0 points, got {self.max_drop}")
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.subset < 1 or self.bench_iterations < 0:
            raise ConfigError("--subset must be >= 1 and --bench-iterations >= 0")

    @property
    def targets(self) -> tuple[str, ...]:
        return ("tensorrt", "cpu") if self.target == "both" else (self.target,)

    @property
    def methods(self) -> tuple[str, ...]:
        return METHODS if self.method == "all" else (self.method,)


@dataclass
class TargetResult:
    """One INT8 graph written."""

    target: str
    path: Path
    method: str
    method_scores: dict[str, float] = field(default_factory=dict)  # plain INT8 per method (points)
    plain_score: float | None = None  # chosen method, nothing kept float
    score: float | None = None  # final (after the gate)
    gate: dict[str, Any] | None = None
    kept_float_layers: list[str] = field(default_factory=list)
    kept_float_nodes: list[str] = field(default_factory=list)
    graph: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            "target": self.target,
            "path": str(self.path),
            "method": self.method,
            "method_scores": {k: r(v) for k, v in self.method_scores.items()},
            "plain_score": r(self.plain_score),
            "score": r(self.score),
            "kept_float_layers": self.kept_float_layers,
            "gate": self.gate,
            "graph": self.graph,
        }


@dataclass
class CalibrationReport:
    model: Path
    task: str
    data: dict[str, Any]
    options: dict[str, Any]
    metric: str | None
    fp32_score: float | None
    targets: list[TargetResult]
    cache: Path | None
    latency: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    seconds: dict[str, float]
    report_path: Path | None = None

    @property
    def max_drop(self) -> float | None:
        return self.options.get("max_drop")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "task": self.task,
            "data": self.data,
            "options": self.options,
            "accuracy": {
                "metric": self.metric,
                "fp32": None if self.fp32_score is None else round(self.fp32_score, 3),
                "labelled": self.data.get("labelled"),
            },
            "targets": [t.to_dict() for t in self.targets],
            "cache": None if self.cache is None else str(self.cache),
            "latency": self.latency,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "layers": self.layers,
        }


def output_paths(model: Path, output: Path | None, target: str) -> dict[str, Path]:
    """Where each output goes: ``MODEL.int8.onnx``, ``MODEL.int8.cpu.onnx``, ``MODEL.calib``, ``MODEL.int8.json``."""
    stem = model.name.removesuffix(".onnx")
    base = output if output is not None else model.with_name(f"{stem}.int8.onnx")
    base_stem = base.name.removesuffix(".onnx")
    paths = {
        "tensorrt": base,
        "cpu": base.with_name(f"{base_stem}.cpu.onnx"),
        "cache": base.with_name(f"{base_stem.removesuffix('.int8')}.calib"),
        "report": base.with_name(f"{base_stem}.json"),
    }
    if target == "cpu" and output is not None:
        paths["cpu"] = output
    return paths


def calibrate(
    model_path: Path,
    data: Path,
    options: CalibrateOptions = CalibrateOptions(),
    *,
    output: Path | None = None,
    meta: ModelMeta | None = None,
    stages: StageFn | None = None,
) -> CalibrationReport:
    """Calibrate ``model_path`` on ``data`` and write the INT8 outputs (see the module doc).

    Args:
        model_path: FP32 ONNX.
        data: image folder/glob, video, or COCO/YOLO dataset.
        options: see :class:`CalibrateOptions`.
        output: path of the main INT8 graph (default ``MODEL.int8.onnx``).
        meta: the model's metadata when its file has none (``--task/--names/--imgsz``).
        stages: ``stages(description, total) -> progress(done, total)`` for progress bars.

    Raises:
        ConfigError: bad options, or a model that is already quantized / not FP32.
        DatasetError: no readable images.
    """
    from edgecv.export.convert import read_meta
    from edgecv.export.graph import load_onnx, save_onnx, set_metadata
    from edgecv.quant.collect import collect_stats
    from edgecv.quant.gate import HeldOut, ModelBuilder, run_gate

    stages = stages or no_stages
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ConfigError(f"{model_path} not found", hint="pass the FP32 .onnx that `edgecv export` wrote")
    meta = meta or read_meta(model_path)
    model = load_onnx(model_path)
    qdq.check_float_model(model, meta.precision)
    prepared = qdq.prepare(model)
    paths = output_paths(model_path, output, options.target)
    evaluate = options.val is not None or bool(options.holdout)
    if (options.max_drop is not None or options.method == "all") and not evaluate:
        raise ConfigError("--max-drop and --method all measure accuracy on held-out images, but --holdout is 0", hint="keep --holdout > 0 or pass --val")

    images = calib_data.gather(
        data, num=options.num, holdout=options.holdout if evaluate else 0, every=options.every, seed=options.seed, val=options.val
    )
    if len(images.calibration) < calib_data.MIN_RECOMMENDED:
        log.warning(
            "calibrating on %d images; %d or more give steadier ranges (--num, or add images)",
            len(images.calibration), calib_data.MIN_RECOMMENDED,
        )  # fmt: skip
    skipped: list[str] = []
    stats, seen = collect_stats(
        prepared,
        calib_data.tensors(images.calibration, meta, skipped),
        total=len(images.calibration),
        progress=stages("activation statistics", len(images.calibration)),
        threads=options.threads,
    )
    if skipped:
        log.warning("skipped %d unreadable calibration images (e.g. %s)", len(skipped), ", ".join(skipped[:3]))
    seconds["statistics"] = time.perf_counter() - clock

    amax = {m: qdq.amaxes(stats, m, options.percentile) for m in options.methods}
    reference_builder = ModelBuilder(lambda keep: prepared, meta)
    held: HeldOut | None = None
    fp32_score = fp32_subset = None
    if images.holdout:
        clock = time.perf_counter()
        held = HeldOut(images.holdout, reference_builder([]), dataset=images.dataset, threads=options.threads)
        fp32_score = held.score(reference_builder([]))
        fp32_subset = held.score(reference_builder([]), limit=options.subset)
        seconds["fp32 score"] = time.perf_counter() - clock
        log.info("FP32 scores %.2f (%s) on %d held-out images", fp32_score, held.metric, len(held))

    results: list[TargetResult] = []
    builders: list[ModelBuilder] = [reference_builder]
    try:
        for target in options.targets:
            clock = time.perf_counter()
            symmetric = target == "tensorrt"
            place = qdq.placement(prepared, target, keep_tail=options.keep_tail)

            def graph_for(method: str, keep: Any, target: str = target, symmetric: bool = symmetric) -> Any:
                ranges = qdq.tensor_ranges(stats, amax[method], symmetric=symmetric)
                return qdq.quantize(prepared, ranges, target=target, keep_tail=options.keep_tail, keep_float=keep)[0]

            int8_meta = meta.replace(precision="int8")
            method_builders = {m: ModelBuilder(lambda keep, m=m: graph_for(m, keep), int8_meta) for m in options.methods}
            builders.extend(method_builders.values())
            result = TargetResult(target, paths[target], options.methods[0])
            if held is not None:
                update = stages(f"{target}: score methods", len(options.methods))
                for done, method in enumerate(options.methods, 1):
                    result.method_scores[method] = held.score(method_builders[method]([]))
                    update(done, len(options.methods))
                result.method = max(options.methods, key=lambda m: result.method_scores[m])
                result.plain_score = result.score = result.method_scores[result.method]
            keep_nodes: list[str] = []
            if options.max_drop is not None and held is not None and fp32_score is not None and fp32_subset is not None:
                assert result.plain_score is not None
                if result.plain_score >= fp32_score - options.max_drop:
                    log.info("%s INT8 is within %.2f points of FP32 with nothing kept float", target, options.max_drop)
                    result.gate = {"kept_float_layers": [], "score": round(result.plain_score, 3), "passed": True, "trials": []}
                else:
                    gate = run_gate(
                        method_builders[result.method],
                        place.layers,
                        held,
                        baseline=fp32_score,
                        baseline_subset=fp32_subset,
                        max_drop=options.max_drop,
                        subset=options.subset,
                        progress=stages(f"{target}: layer sensitivity", len(place.layers)),
                    )
                    keep_nodes = result.kept_float_nodes = gate.kept_nodes
                    result.gate = gate.to_dict()
                    result.kept_float_layers = gate.kept_layers
                    result.score = gate.score
                    if not gate.passed:
                        log.warning(
                            "%s: even with %d layers float the drop is %.2f points (> %.2f)",
                            target, len(gate.kept_layers), fp32_score - gate.score, options.max_drop,
                        )  # fmt: skip
            final = graph_for(result.method, keep_nodes)
            result.graph = qdq.describe(final)
            info = {
                "target": target,
                "method": result.method,
                "percentile": options.percentile if result.method == "percentile" else None,
                "calibration_images": seen,
                "kept_float_layers": result.kept_float_layers,
                "keep_tail": options.keep_tail,
            }
            if held is not None:
                info |= {"metric": held.metric, "fp32": round(fp32_score or 0, 3), "int8": round(result.score or 0, 3), "holdout_images": len(held)}
            if options.max_drop is not None:
                info["max_drop"] = options.max_drop
            set_metadata(final, int8_meta.replace(extra={**meta.extra, "int8": info}))
            save_onnx(final, result.path)
            results.append(result)
            seconds[target] = time.perf_counter() - clock
    finally:
        for builder in builders:
            builder.close()

    cache_path = None
    if options.cache:
        method = next((r.method for r in results if r.target == "tensorrt"), results[0].method)
        kept = set(next((r.kept_float_nodes for r in results if r.target == "tensorrt"), []))
        cache_path = _write_cache(paths["cache"], prepared, amax[method], kept, keep_tail=options.keep_tail)

    latency = []
    if options.bench_iterations:
        clock = time.perf_counter()
        latency = _latency(model_path, [r.path for r in results], images, options, stages)
        seconds["latency"] = time.perf_counter() - clock

    report = CalibrationReport(
        model=model_path,
        task=meta.task,
        data={
            "source": images.source,
            "calibration_images": seen,
            "holdout_images": len(held) if held else 0,
            "skipped": len(skipped) + (len(held.skipped) if held else 0),
            "labelled": images.labelled,
        },
        options=_options_dict(options),
        metric=held.metric if held else None,
        fp32_score=fp32_score,
        targets=results,
        cache=cache_path,
        latency=latency,
        layers=_layer_table(stats, amax),
        seconds=seconds,
    )
    report.report_path = atomic_write_bytes(paths["report"], json.dumps(report.to_dict(), indent=2).encode())
    return report


def _options_dict(options: CalibrateOptions) -> dict[str, Any]:
    values = {k: getattr(options, k) for k in options.__dataclass_fields__}
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def cache_tensors(prepared: Any, amax: dict[str, float], kept_nodes: set[str], *, keep_tail: bool) -> dict[str, float]:
    """The tensors a TensorRT 10 implicit-INT8 build gets scales for: all float activations except what stays float.

    Outputs of the tail (decode, scores) and of kept-float nodes get no scale, so TensorRT
    keeps them in higher precision, as the Q/DQ graph does.
    """
    from edgecv.quant.fp16 import tail_nodes

    float_nodes = set(kept_nodes) | (set(tail_nodes(prepared)) if keep_tail else set())
    excluded = {out for node in prepared.graph.node if node.name in float_nodes for out in node.output}
    excluded |= {o.name for o in prepared.graph.output}
    return {name: value for name, value in amax.items() if name not in excluded and value > 0}


def _write_cache(path: Path, prepared: Any, amax: dict[str, float], kept_nodes: set[str], *, keep_tail: bool) -> Path:
    from edgecv.quant.trt_cache import write_cache

    return write_cache(path, cache_tensors(prepared, amax, kept_nodes, keep_tail=keep_tail))


def _latency(model: Path, outputs: list[Path], images: calib_data.ImageSet, options: CalibrateOptions, stages: StageFn) -> list[dict[str, Any]]:
    """FP32 and each INT8 graph, interleaved in one run (``edgecv bench``'s code)."""
    from edgecv.bench.latency import BenchConfig, benchmark

    loaded = (image.try_load(quiet=True) for image in (images.holdout or images.calibration)[:16])  # already reported
    frames = [frame for frame in loaded if frame is not None]
    if not frames:
        return []
    h, w = frames[0].shape[:2]
    import cv2

    frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h)) for f in frames]
    cfg = BenchConfig(warmup=5, iterations=options.bench_iterations, threads=options.threads)
    report = benchmark([model, *outputs], cfg, frames, progress=stages("latency (ONNX Runtime CPU)", None))
    rows = []
    for record in report.results:
        e2e = record.stages["e2e"]
        infer = record.stages["infer"]
        rows.append(
            {
                "model": record.model,
                "precision": record.precision,
                "status": record.status,
                "error": record.error,
                "infer_p50_ms": round(infer.p50, 3) if record.ok and infer.count else None,
                "e2e_p50_ms": round(e2e.p50, 3) if record.ok and e2e.count else None,
                "e2e_p99_ms": round(e2e.p99, 3) if record.ok and e2e.count else None,
                "speedup": None if record.speedup is None else round(record.speedup, 3),
            }
        )
    return rows


def _layer_table(stats: dict[str, TensorStats], amax: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for name, s in stats.items():
        if not s.count:
            continue
        row: dict[str, Any] = {"tensor": name, "min": float(f"{s.min:.6g}"), "max": float(f"{s.max:.6g}")}
        row["amax"] = {m: float(f"{values[name]:.6g}") for m, values in amax.items() if name in values}
        rows.append(row)
    return rows


def calibration_meta(
    model_path: Path,
    *,
    task: str | None = None,
    names: tuple[str, ...] | None = None,
    imgsz: tuple[int, int] | None = None,
) -> ModelMeta:
    """The model's metadata, with ``--task/--names/--imgsz`` applied.

    A model without edgecv metadata is recognised from its outputs; its input size must
    then be known: fixed in the graph, recorded by Ultralytics (``imgsz``), or ``--imgsz``.

    Raises:
        ConfigError: a dynamic input size that nothing states.
    """
    from edgecv.engine.onnxruntime import OnnxRuntimeEngine
    from edgecv.export.graph import load_onnx

    props = {p.key: p.value for p in load_onnx(model_path).metadata_props}
    ours = ModelMeta.from_props(props)
    with OnnxRuntimeEngine(model_path, task=task, names=names) as engine:
        meta = engine.meta
    if ours is None and meta.dynamic and imgsz is None and "imgsz" not in props:
        raise ConfigError(
            f"{model_path.name} has no edgecv metadata and a dynamic input size: the calibration image size is unknown",
            hint="pass --imgsz H,W (the size the model runs at), or export it with `edgecv export`",
        )
    if imgsz is not None:
        if not meta.dynamic and tuple(imgsz) != tuple(meta.input_size):
            raise ConfigError(f"--imgsz {imgsz[0]},{imgsz[1]} differs from the model's fixed input {meta.input_size[0]},{meta.input_size[1]}")
        meta = meta.replace(input_size=tuple(imgsz))
    return meta
