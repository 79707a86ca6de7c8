"""Latency of one or more models, measured side by side: ``edgecv bench``.

Each (model, batch size) is an entry. After a warm-up, entries take turns in
rounds of ``chunk`` iterations, so slow drift of the machine (thermal
throttling, a background job) spreads over all of them instead of favouring
whichever ran first. One iteration is: preprocess ``batch`` frames (letterbox,
normalize), one inference, postprocess each image (decode + NMS / argmax); the
three stages and their sum ("e2e") are recorded in ms per batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.bench.records import BenchReport, ModelBench
from edgecv.errors import ConfigError, EdgecvError
from edgecv.stream.stats import LatencyStats

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Options of ``edgecv bench``: ``iterations`` per entry, or ``duration_s`` per entry when set."""

    warmup: int = 10
    warmup_s: float | None = None  # warm up for this long per entry instead of ``warmup`` iterations
    iterations: int = 100
    duration_s: float | None = None
    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = None
    chunk: int = 10
    backend: str = "auto"
    cuda_graph: bool = False  # TensorRT entries replay a captured CUDA graph (see TensorRTEngine)
    gpu_preprocess: bool = True  # TensorRT entries preprocess with the CUDA kernel where they can (Model.gpu_preprocess)
    triton: str | None = None  # run the networks on this Triton server (models are names there; edgecv.engine.triton)
    imgsz: tuple[int, int] | None = None  # run every model at this (h, w) (edgecv.load(imgsz=...))
    square: bool = False  # pad frames to the full input size

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}", hint="leave out --threads for the runtime's default")
        if self.duration_s is None and self.iterations <= 0:
            raise ConfigError(f"--iterations must be positive, got {self.iterations}", hint="e.g. --iterations 200, or --duration 10")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"--duration must be positive, got {self.duration_s}")
        if self.warmup < 0 or (self.warmup_s is not None and self.warmup_s < 0):
            raise ConfigError(f"warm-up must be >= 0, got {self.warmup_s if self.warmup_s is not None else self.warmup}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {list(self.batch_sizes)}", hint="e.g. --batch 1,4,8")
        if self.chunk < 1:
            raise ConfigError(f"chunk must be >= 1, got {self.chunk}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "batch_sizes": list(self.batch_sizes)}


def synthetic_frames(count: int = 16, size: tuple[int, int] = (480, 640), seed: int = 0) -> list[np.ndarray]:
    """Shapes scenes (BGR uint8, (h, w)): real content, so NMS and decode do realistic work."""
    from edgecv.data.synthetic import make_scene

    rng = np.random.default_rng(seed)
    return [make_scene(rng, *size)[0] for _ in range(count)]


def frames_from(source: str | Path, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` frames of a video, image, folder or glob, all resized to the first one's size.

    One size keeps batches stackable and every iteration comparable.
    """
    import cv2

    from edgecv.stream.sources import open_source

    frames: list[np.ndarray] = []
    with open_source(source) as src:
        for frame in src:
            frames.append(frame.image)
            if len(frames) >= limit:
                break
    if not frames:
        raise ConfigError(f"no frames could be read from {source}", hint="pass a video, an image or a folder of images")
    h, w = frames[0].shape[:2]
    return [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h)) for f in frames]


class _Entry:
    """One (model, batch) being measured: the model, its frames and its record."""

    def __init__(self, record: ModelBench, model: Any, frames: list[np.ndarray]) -> None:
        self.record = record
        self.model = model
        self.frames = frames
        self.cursor = 0
        self.input_name = model.engine.inputs[0].name

    def step(self, record: bool) -> None:
        """One timed iteration: preprocess ``batch`` frames, infer once, postprocess each image."""
        b = self.record.batch
        n = len(self.frames)
        batch = [self.frames[(self.cursor + k) % n] for k in range(b)]
        self.cursor = (self.cursor + b) % n
        perf = time.perf_counter
        t0 = perf()
        prepared = [self.model.preprocess(f) for f in batch]
        feeds = prepared[0][0] if b == 1 else {self.input_name: np.concatenate([p[0][self.input_name] for p in prepared])}
        t1 = perf()
        outputs = self.model.infer(feeds)
        t2 = perf()
        if b == 1:
            self.model.postprocess(outputs, prepared[0][1])
        else:
            for k, (_, transform) in enumerate(prepared):
                self.model.postprocess({name: value[k : k + 1] for name, value in outputs.items()}, transform)
        t3 = perf()
        if record:
            pre_ms, infer_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
            if b == 1 and getattr(self.model, "gpu_preprocess", False):
                pre_ms, infer_ms = self.model.stage_ms(pre_ms, infer_ms)  # the kernel's GPU time belongs to pre
            s = self.record.stages
            gpu_ms = getattr(self.model.engine, "last_gpu_ms", None)  # TensorRT: CUDA-event time of the network alone
            if gpu_ms is not None:
                s.setdefault("gpu", LatencyStats("gpu")).add(gpu_ms)
            s["pre"].add(pre_ms)
            s["infer"].add(infer_ms)
            s["post"].add((t3 - t2) * 1e3)
            s["e2e"].add((t3 - t0) * 1e3)


def _open(
    path: str | Path, cfg: BenchConfig, batch: int, frames: list[np.ndarray], *, interleaved: bool = False
) -> tuple[ModelBench, Any]:
    """Load a model for one entry; any failure becomes an error row instead of stopping the bench.

    ``interleaved``: other entries take turns with this one, so ONNX Runtime's worker
    threads must stop spinning after each run (see ``OnnxRuntimeEngine(stop_spinning=)``).
    """
    import edgecv
    from edgecv.engine.registry import backend_for

    record = ModelBench(model=str(path), batch=batch, name=Path(path).name, threads=cfg.threads)
    try:
        size = {"imgsz": cfg.imgsz, "square": cfg.square}
        if cfg.triton:
            model = edgecv.load(path, triton=cfg.triton, threads=cfg.threads, **size)
            backend = "triton"
        else:
            backend = backend_for(Path(path), cfg.backend)
            options = {"stop_spinning": True} if interleaved and backend == "onnxruntime" else {}
            if cfg.cuda_graph and backend == "tensorrt":
                options["cuda_graph"] = True
            model = edgecv.load(path, backend=cfg.backend, threads=cfg.threads, **size, **options)
    except EdgecvError as exc:
        record.status, record.error, record.hint, record.exit_code = "error", exc.message, exc.hint, exc.exit_code
        return record, None
    record.backend, record.task, record.precision = model.engine.backend, model.task, model.meta.precision
    batch_dim = model.engine.inputs[0].shape[0]
    if batch_dim not in (-1, batch):
        model.close()
        record.status = "error"
        record.error = f"input batch is fixed at {batch_dim}, cannot bench batch {batch}"
        record.exit_code = 2
        record.hint = "export with a dynamic batch (edgecv export --dynamic-batch 1:4:16), or bench --batch 1"
        return record, None
    if batch > 1 or not cfg.gpu_preprocess:
        model.gpu_preprocess = False  # batch > 1: frames are batched on the host
    feeds, _ = model.preprocess(frames[0])
    record.input_shape = [batch, *[int(d) for d in next(iter(feeds.values())).shape[1:]]]
    return record, model


def benchmark(
    models: Sequence[str | Path],
    cfg: BenchConfig,
    frames: list[np.ndarray],
    *,
    environment: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure every model at every batch size, interleaved; failed models keep an error row.

    Speed-ups are relative to the first model that ran, at the same batch size
    (ratio of median end-to-end times).
    """
    if not models:
        raise ConfigError("no model to benchmark", hint="pass one or more model files")
    if not frames:
        raise ConfigError("no frames to benchmark with")
    records: list[ModelBench] = []
    entries: list[_Entry] = []
    interleaved = len(models) * len(cfg.batch_sizes) > 1
    for path in models:
        for batch in cfg.batch_sizes:
            record, model = _open(path, cfg, batch, frames, interleaved=interleaved)
            records.append(record)
            if model is not None:
                entries.append(_Entry(record, model, frames))
    try:
        _measure(entries, cfg, progress)
    finally:
        for entry in entries:
            entry.model.close()
    _speedups(records)
    return BenchReport(environment=environment or {}, config=cfg.to_dict(), results=records)


def _run_guarded(entry: _Entry, count: int, record: bool, active: list[_Entry]) -> None:
    try:
        for _ in range(count):
            entry.step(record)
    except Exception as exc:  # an engine failing mid-run: report it, keep measuring the others
        log.debug("bench of %s failed", entry.record.model, exc_info=True)
        entry.record.status = "error"
        entry.record.error = exc.message if isinstance(exc, EdgecvError) else f"{type(exc).__name__}: {exc}"
        entry.record.exit_code = exc.exit_code if isinstance(exc, EdgecvError) else 1
        entry.record.hint = exc.hint if isinstance(exc, EdgecvError) else "run with -v for the full trace; report it if it is not your model"
        active.remove(entry)


def _measure(entries: list[_Entry], cfg: BenchConfig, progress: Progress | None) -> None:
    active = list(entries)
    for entry in list(active):
        if cfg.warmup_s is None:
            _run_guarded(entry, cfg.warmup, False, active)
            continue
        end = time.perf_counter() + cfg.warmup_s
        while entry in active and time.perf_counter() < end:
            _run_guarded(entry, 1, False, active)
    if cfg.duration_s is None:
        total = len(active) * cfg.iterations
        rounds = math.ceil(cfg.iterations / cfg.chunk)
        for r in range(rounds):
            count = min(cfg.chunk, cfg.iterations - r * cfg.chunk)
            for entry in list(active):
                _run_guarded(entry, count, True, active)
            if progress:
                progress(min(total, (r * cfg.chunk + count) * len(entries)), total)
        return
    budget_ms = cfg.duration_s * 1e3
    while True:
        pending = [e for e in active if e.record.stages["e2e"].count * e.record.stages["e2e"].mean < budget_ms or not e.record.stages["e2e"].count]
        if not pending:
            break
        for entry in pending:
            _run_guarded(entry, cfg.chunk, True, active)
        if progress:
            spent = sum(min(budget_ms, e.record.stages["e2e"].count * e.record.stages["e2e"].mean) for e in entries if e.record.stages["e2e"].count)
            progress(int(spent), int(budget_ms * len(entries)))


def _speedups(records: list[ModelBench]) -> None:
    reference: dict[int, ModelBench] = {}
    for record in records:
        if not record.ok or not record.stages["e2e"].count:
            continue
        ref = reference.setdefault(record.batch, record)
        record.speedup = ref.stages["e2e"].p50 / record.stages["e2e"].p50


def add_accuracy(report: BenchReport, data: Path, *, max_images: int | None = None, progress: Progress | None = None) -> None:
    """Evaluate every model that ran (once per model) and fill the accuracy columns.

    Deltas are in points (x100) against the first model that ran, the reference of the speed-ups too.
    """
    import edgecv
    from edgecv.bench.accuracy import evaluate
    from edgecv.data.datasets import open_dataset

    dataset = open_dataset(data)
    by_model: dict[str, dict[str, Any] | None] = {}
    for record in report.results:
        if not record.ok or record.model in by_model:
            continue
        try:
            remote = {"triton": report.config["triton"]} if report.config.get("triton") else {}
            size = report.config.get("imgsz")
            with edgecv.load(
                record.model, conf=0.001, iou=0.6, threads=report.config.get("threads"), imgsz=size, square=bool(report.config.get("square")), **remote
            ) as model:
                metrics = evaluate(model, dataset, progress=progress, max_images=max_images).to_dict()
            metric = "map" if record.task == "detect" else "miou"
            by_model[record.model] = {"metric": metric, "value": metrics[metric], **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
        except EdgecvError as exc:
            log.warning("accuracy of %s not measured: %s", record.name, exc.message)
            by_model[record.model] = None
    # the same reference as the speed-ups: the first model that ran
    first_ok = next((r.model for r in report.results if r.ok), None)
    reference = by_model.get(first_ok) if first_ok else None
    for record in report.results:
        acc = by_model.get(record.model)
        record.accuracy = acc
        if acc is not None and reference is not None and acc["metric"] == reference["metric"]:
            record.accuracy_delta = (acc["value"] - reference["value"]) * 100
