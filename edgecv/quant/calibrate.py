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
    min_recall: float | None = None
    min_precision: float | None = None
    max_score_drop: float | None = None
    min_pixel_agreement: float | None = None
    conf: float = 0.25
    iou: float = 0.45
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
        _ = self.limits  # validates the gate's limits
        if not 0 < self.conf < 1 or not 0 < self.iou <= 1:
            raise ConfigError(f"--conf must be in (0, 1) and --iou in (0, 1], got {self.conf} and {self.iou}")
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.subset < 1 or self.bench_iterations < 0:
            raise ConfigError("--subset must be >= 1 and --bench-iterations >= 0")

    @property
    def gate(self) -> bool:
        """The accuracy gate runs when any of its limits is given (the others take their defaults)."""
        return any(v is not None for v in (self.max_drop, self.min_recall, self.min_precision, self.max_score_drop, self.min_pixel_agreement))

    @property
    def limits(self) -> Any:
        """:class:`~edgecv.quant.gate.GateLimits` from the options (defaults where not given)."""
        from edgecv.quant import gate

        given = {
            "min_recall": self.min_recall, "min_precision": self.min_precision,
            "max_score_drop": self.max_score_drop, "min_pixel_agreement": self.min_pixel_agreement,
        }  # fmt: skip
        return gate.GateLimits(max_drop=self.max_drop, **{k: v for k, v in given.items() if v is not None})

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
    fidelity: dict[str, Any] | None = None  # at the operating point, vs FP32
    vs_labels: dict[str, Any] | None = None  # at the operating point, vs the labels (labelled data)
    uncertainty: dict[str, Any] | None = None  # bootstrap intervals; is the held-out set large enough
    verdict: str | None = None  # gate: passed / failed / inconclusive (too little held-out data); None: no gate

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            "target": self.target,
            "path": str(self.path),
            "method": self.method,
            "method_scores": {k: r(v) for k, v in self.method_scores.items()},
            "plain_score": r(self.plain_score),
            "score": r(self.score),
            "verdict": self.verdict,
            "fidelity": _rounded(self.fidelity),
            "vs_labels": _rounded(self.vs_labels),
            "uncertainty": self.uncertainty,
            "kept_float_layers": self.kept_float_layers,
            "gate": self.gate,
            "graph": self.graph,
        }


def _rounded(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}



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
    fp32_vs_labels: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None  # the gate's rule, when it ran

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
                "operating_point": {"conf": self.options.get("conf"), "iou": self.options.get("iou")},
                "fp32_vs_labels": _rounded(self.fp32_vs_labels),
                "gate": self.limits,
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
    from edgecv.graph.onnx_graph import load_onnx, save_onnx, set_metadata
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
    if (options.gate or options.method == "all") and not evaluate:
        raise ConfigError("the accuracy gate and --method all measure accuracy on held-out images, but --holdout is 0", hint="keep --holdout > 0 or pass --val")

    images = calib_data.gather(
        data, num=options.num, holdout=options.holdout if evaluate else 0, every=options.every, seed=options.seed, val=options.val
    )
    if len(images.calibration) < calib_data.MIN_RECOMMENDED:
        log.warning(
            "calibrating on %d images; %d or more give steadier ranges (--num, or add images)",
            len(images.calibration), calib_data.MIN_RECOMMENDED,
        )  # fmt: skip
    skipped: list[str] = []
    # Ranges are needed for the tensors the Q/DQ graphs quantize (histograms, unless minmax only);
    # the TensorRT 10 cache takes a scale for every activation, so it adds min/max of the rest.
    needed = set(qdq.range_tensors(prepared, options.targets, keep_tail=options.keep_tail))
    with_cache = options.cache and "tensorrt" in options.targets
    histograms = needed if any(m != "minmax" for m in options.methods) else set()
    stats, seen = collect_stats(
        prepared,
        calib_data.tensors(images.calibration, meta, skipped),
        total=len(images.calibration),
        progress=stages("activation statistics", len(images.calibration)),
        threads=options.threads,
        tensors=None if with_cache else needed,
        histogram=histograms,
    )
    if skipped:
        log.warning("skipped %d unreadable calibration images (e.g. %s)", len(skipped), ", ".join(skipped[:3]))
    seconds["statistics"] = time.perf_counter() - clock

    amax = {m: qdq.amaxes(stats, m, options.percentile) for m in options.methods}
    reference_builder = ModelBuilder(lambda keep: prepared, meta)
    held: HeldOut | None = None
    fp32_score = None
    limits = options.limits
    if images.holdout:
        clock = time.perf_counter()
        held = HeldOut(images.holdout, reference_builder([]), dataset=images.dataset, threads=options.threads, conf=options.conf, iou=options.iou)
        fp32_score = held.fp32.score
        seconds["fp32 reference"] = time.perf_counter() - clock
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
            keep_nodes: list[str] = []
            if held is not None:
                assert fp32_score is not None
                update = stages(f"{target}: score methods", len(options.methods))
                evaluations = {}
                for done, method in enumerate(options.methods, 1):
                    evaluation = held.evaluate(method_builders[method]([]))
                    assert evaluation is not None  # no stop limits: always complete
                    evaluations[method] = evaluation
                    result.method_scores[method] = evaluations[method].score
                    update(done, len(options.methods))
                # the best method: the one closest to passing the gate's checks (mAP/mIoU alone without a gate)
                ranks = {
                    m: (e.margin(limits, held.task, fp32_score) if options.gate else 0.0, e.score) for m, e in evaluations.items()
                }
                result.method = max(options.methods, key=ranks.__getitem__)
                chosen = evaluations[result.method]
                result.plain_score = result.score = chosen.score
                if options.gate:
                    gate = run_gate(
                        method_builders[result.method],
                        place.layers,
                        held,
                        limits=limits,
                        subset=options.subset,
                        plain=chosen,
                        progress=None if chosen.passes(limits, held.task, fp32_score) else stages(f"{target}: layer sensitivity", len(place.layers)),
                    )
                    keep_nodes = result.kept_float_nodes = gate.kept_nodes
                    result.gate = gate.to_dict()
                    result.kept_float_layers = gate.kept_layers
                    chosen = gate.evaluation
                    result.score = chosen.score
                result.fidelity = chosen.fidelity
                result.vs_labels = chosen.vs_labels
                clock_ci = time.perf_counter()
                result.uncertainty = held.uncertainty(chosen, limits)
                seconds["bootstrap intervals"] = seconds.get("bootstrap intervals", 0.0) + time.perf_counter() - clock_ci
                if options.gate:
                    passed = bool(result.gate and result.gate["passed"])
                    result.verdict = "failed" if not passed else "passed" if result.uncertainty["sufficient"] else "inconclusive"
                    _log_verdict(target, result, fp32_score, limits)
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
                info["operating_point"] = {"conf": options.conf, "iou": options.iou, **(_rounded(result.fidelity) or {})}
            if options.gate:
                info["gate"] = {"verdict": result.verdict, **limits.to_dict(meta.task)}
            if options.max_drop is not None:
                info["max_drop"] = options.max_drop
            set_metadata(final, int8_meta.replace(extra={**meta.extra, "int8": info}))
            if result.verdict in ("failed", "inconclusive"):
                # not a checked model: it never takes the target's name (an earlier good MODEL.int8.onnx stays)
                result.path = unchecked_path(result.path, result.verdict)
            save_onnx(final, result.path)
            results.append(result)
            seconds[target] = time.perf_counter() - clock
    finally:
        for builder in builders:
            builder.close()
    if held is not None:
        seconds |= {f"held-out {k}": v for k, v in held.seconds.items()}
    seconds["graph builds"] = sum(b.seconds for b in builders)

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
        fp32_vs_labels=_fp32_vs_labels(held),
        limits=limits.to_dict(meta.task) if options.gate else None,
        targets=results,
        cache=cache_path,
        latency=latency,
        layers=_layer_table(stats, amax),
        seconds=seconds,
    )
    report.report_path = atomic_write_bytes(paths["report"], json.dumps(report.to_dict(), indent=2).encode())
    return report


def _fp32_vs_labels(held: Any) -> dict[str, Any] | None:
    """FP32 at the operating point against the labels (labelled detector data only)."""
    if held is None or not held.labelled or held.task != "detect":
        return None
    return held.fp32.vs_labels


def unchecked_path(path: Path, verdict: str) -> Path:
    """Where a graph the gate did not pass is kept for inspection: ``m.int8.onnx`` -> ``m.int8.failed.onnx``
    (gate failed) or ``m.int8.unverified.onnx`` (too little held-out data to decide)."""
    tag = "failed" if verdict == "failed" else "unverified"
    return path.with_name(f"{path.stem}.{tag}{path.suffix}")


def _log_verdict(target: str, result: TargetResult, fp32_score: float, limits: Any) -> None:
    fidelity = result.fidelity or {}
    if result.verdict == "failed":
        log.warning("%s: the INT8 graph fails the gate (%s) even with %d layers float", target, _fidelity_text(fidelity, fp32_score - (result.score or 0)), len(result.kept_float_layers))
    elif result.verdict == "inconclusive":
        log.warning("%s: the INT8 graph passes on %d held-out images, but they are too few to show it", target, (result.uncertainty or {}).get("images", 0))


def _fidelity_text(fidelity: dict[str, Any], drop: float) -> str:
    parts = [f"drop {drop:.2f} points"]
    for key, label, fmt in (("recall", "recall", ".3f"), ("precision", "precision", ".3f"), ("mean_score_change", "mean score change", "+.3f"), ("pixel_agreement", "pixel agreement", ".4f")):
        if fidelity.get(key) is not None:
            parts.append(f"{label} {fidelity[key]:{fmt}}")
    return ", ".join(parts)


def _options_dict(options: CalibrateOptions) -> dict[str, Any]:
    values = {k: getattr(options, k) for k in options.__dataclass_fields__}
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def cache_tensors(prepared: Any, amax: dict[str, float], kept_nodes: set[str], *, keep_tail: bool) -> dict[str, float]:
    """The tensors a TensorRT 10 implicit-INT8 build gets scales for: all float activations except what stays float.

    Outputs of the tail (decode, scores) and of kept-float nodes get no scale, so TensorRT
    keeps them in higher precision, as the Q/DQ graph does.
    """
    from edgecv.graph.fp16 import tail_nodes

    float_nodes = set(kept_nodes) | (set(tail_nodes(prepared)) if keep_tail else set())
    excluded = {out for node in prepared.graph.node if node.name in float_nodes for out in node.output}
    excluded |= {o.name for o in prepared.graph.output}
    return {name: value for name, value in amax.items() if name not in excluded and value > 0}


def _write_cache(path: Path, prepared: Any, amax: dict[str, float], kept_nodes: set[str], *, keep_tail: bool) -> Path:
    from edgecv.engine.trt_cache import write_cache

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
    from edgecv.graph.onnx_graph import load_onnx

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
