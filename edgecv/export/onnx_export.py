"""Export a built-in architecture (checkpoint or state dict) to ONNX with edgecv metadata.

The pipeline is: rebuild the model -> ``torch.onnx.export`` (dynamo exporter, falling
back to the TorchScript one) -> onnxslim -> metadata -> atomic save -> parity check
against PyTorch on real images through the same host preprocessing ``run`` uses.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv import __version__
from edgecv._optional import require
from edgecv.artifact import ModelMeta, atomic_output, file_sha256
from edgecv.errors import ConfigError, ExportError
from edgecv.graph.onnx_graph import failed_path, load_onnx, name_dynamic_dims, save_onnx, set_metadata
from edgecv.zoo.registry import Architecture, get_architecture

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
EXPORTERS = ("dynamo", "torchscript")


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """Options of ``edgecv export``.

    ``input_size`` defaults to the architecture's; with ``dynamic`` the batch and the
    image size (multiples of the stride) are left free, so ``run`` can feed
    minimally padded letterboxes.
    """

    arch: str | None = None
    num_classes: int | None = None
    width: float = 1.0  # width multiplier of a plain state dict's architecture
    names: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None
    dynamic: bool = True
    opset: int = 18
    simplify: bool = True
    exporter: str = "dynamo"
    parity_images: Sequence[Path] = field(default_factory=tuple)
    parity_count: int = 4
    atol: float = 1e-3
    rtol: float = 1e-3
    tolerance: float = 0.99  # least task-level agreement (matched detections / equal pixels) the parity check accepts
    batch_range: tuple[int, int, int] | None = None  # min, opt, max batch for TensorRT profiles (default 1:1:16)

    def __post_init__(self) -> None:
        if self.batch_range is not None:
            lo, opt, hi = self.batch_range
            if not 1 <= lo <= opt <= hi:
                raise ConfigError(f"batch range must satisfy 1 <= MIN <= OPT <= MAX, got {lo}:{opt}:{hi}", hint="e.g. --dynamic-batch 1:4:16")
            if not self.dynamic:
                raise ConfigError("--dynamic-batch conflicts with --static", hint="drop one of them")
        if self.exporter not in EXPORTERS:
            raise ConfigError(f"unknown exporter {self.exporter!r}", hint=f"use one of {', '.join(EXPORTERS)}")
        if not 0 <= self.tolerance <= 1:
            raise ConfigError(f"--tolerance is a share of detections/pixels in [0, 1], got {self.tolerance}", hint="e.g. --tolerance 0.99")
        if self.opset < 17:
            raise ConfigError(f"opset {self.opset} is too old", hint="use --opset 17 or newer (TensorRT 10 parses 17-20)")
        if self.input_size is not None and min(self.input_size) <= 0:
            raise ConfigError(f"input size must be positive, got {self.input_size}")

    @property
    def batch_bounds(self) -> tuple[int, int, int]:
        return self.batch_range or (1, 1, 16)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    meta: ModelMeta
    max_abs_diff: float  # ONNX Runtime vs PyTorch on the parity images (within tolerance, else ExportError)
    exporter: str
    seconds: float
    size_bytes: int
    parity: ParityReport | None = None


def load_torch_model(source: Path, cfg: ExportConfig) -> tuple[Any, Architecture, tuple[str, ...]]:
    """Rebuild an nn.Module from an edgecv checkpoint, or from a plain state dict + ``cfg.arch``."""
    torch = require("torch")
    from edgecv.zoo.checkpoint import load_checkpoint, load_state_dict_strict

    source = Path(source)
    if source.suffix in (".pt", ".pth") and cfg.arch is None:
        model, info = load_checkpoint(source)
        arch = get_architecture(info["arch"])
        names = cfg.names or tuple(info["names"])
        if len(names) != len(info["names"]):
            raise ConfigError(f"{len(names)} names given for a model with {len(info['names'])} classes")
        return model, arch, names
    if cfg.arch is None:
        raise ConfigError(f"cannot tell the architecture of {source}", hint="pass --arch NAME (see `edgecv export --help`)")
    arch = get_architecture(cfg.arch)
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(
            f"cannot load {source} as a weights-only state dict: {str(exc).splitlines()[0]}",
            hint="save weights with torch.save(model.state_dict(), path)",
        ) from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ExportError(f"{source} holds no state dict", hint="save weights with torch.save(model.state_dict(), path)")
    num_classes = cfg.num_classes or (len(cfg.names) if cfg.names else None)
    if num_classes is None:
        raise ConfigError("--num-classes or --names is needed with a plain state dict")
    model = arch.build(num_classes, width=cfg.width)
    load_state_dict_strict(model, state, source)
    names = cfg.names or tuple(f"class{i}" for i in range(num_classes))
    if len(names) != num_classes:
        raise ConfigError(f"{len(names)} names given but --num-classes is {num_classes}")
    return model.eval(), arch, names


def export_model(
    source: Path, out: Path, cfg: ExportConfig = ExportConfig(), *, progress: Progress | None = None, keep_failed: Path | None = None
) -> ExportReport:
    """Export ``source`` (checkpoint / state dict) to ``out`` (.onnx). See :class:`ExportConfig`.

    ``out`` is written only once the parity check passed; an existing file stays as it was otherwise.

    Raises:
        ExportError: tracing failed, or ONNX Runtime disagrees with PyTorch beyond tolerance
            (the rejected file is kept as ``OUT.failed.onnx`` (named after ``keep_failed`` when given)
            for inspection; the message says where).
    """
    torch = require("torch")
    start = time.time()
    steps = 4

    def step(i: int) -> None:
        if progress:
            progress(i, steps)

    model, arch, names = load_torch_model(source, cfg)
    cfg = _arch_defaults(cfg, arch)
    size = cfg.input_size or arch.input_size
    if cfg.dynamic and (size[0] % arch.stride or size[1] % arch.stride):
        raise ConfigError(f"input size {size} is not a multiple of the model stride {arch.stride}")
    step(0)
    meta = ModelMeta(
        task=arch.task,
        names=tuple(names),
        input_size=(int(size[0]), int(size[1])),
        output_format=arch.output_format,
        dynamic=cfg.dynamic,
        stride=arch.stride,
        mean=arch.mean,
        std=arch.std,
        arch=arch.name,
        extra={"dynamic_batch": dict(zip(("min", "opt", "max"), cfg.batch_bounds))} if cfg.dynamic else {},
        source_hash=file_sha256(Path(source))[:16],
        edgecv_version=__version__,
    )
    example = torch.zeros(1, 3, *meta.input_size)
    with tempfile.TemporaryDirectory(prefix="edgecv-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        exporter = _torch_export(model, example, raw, cfg, arch)
        step(1)
        onnx_model = load_onnx(raw)
    if cfg.simplify:
        onnx_model = _simplify(onnx_model)
    step(2)
    if cfg.dynamic:
        out_dims = ["batch", None, "anchors"] if arch.task == "detect" else ["batch", None, "height", "width"]
        name_dynamic_dims(onnx_model, {"images": ["batch", None, "height", "width"], "output0": out_dims})
    onnx_model.producer_name = "edgecv"
    onnx_model.producer_version = __version__
    set_metadata(onnx_model, meta)
    # an existing `out` is replaced only once the new file passed the parity check
    with atomic_output(Path(out)) as tmp:
        save_onnx(onnx_model, tmp)
        step(3)
        try:
            parity = parity_check(model, tmp, meta, cfg)
        except ExportError as exc:
            kept = failed_path(Path(keep_failed or out))
            os.replace(tmp, kept)
            raise ExportError(exc.message.replace(str(tmp), str(kept)), hint=exc.hint) from exc
        meta = meta.replace(extra={**meta.extra, "parity": parity.to_dict()})  # the file remembers how it was checked
        save_onnx(set_metadata(onnx_model, meta), tmp)
    step(4)
    return ExportReport(Path(out), meta, parity.max_abs_diff, exporter, time.time() - start, Path(out).stat().st_size, parity)


def _arch_defaults(cfg: ExportConfig, arch: Architecture) -> ExportConfig:
    """Apply what an architecture needs: its exporter, and a fixed input size where shapes cannot be dynamic.

    Both are logged at INFO and end up in the metadata (``dynamic``) and the report (``exporter``).
    """
    import dataclasses

    changes: dict[str, Any] = {}
    if arch.exporter != "dynamo" and cfg.exporter == "dynamo":
        log.info("%s exports with the %s exporter (the dynamo exporter cannot trace it)", arch.name, arch.exporter)
        changes["exporter"] = arch.exporter
    if not arch.dynamic and cfg.dynamic:
        if cfg.batch_range is not None:
            raise ConfigError(
                f"{arch.name} exports only with a fixed input size and batch 1; --dynamic-batch cannot apply",
                hint="drop --dynamic-batch",
            )
        log.info("%s exports with a fixed input size and batch 1 (static shapes)", arch.name)
        changes["dynamic"] = False
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _output_names(arch: Architecture) -> list[str]:
    if arch.output_format != "tv_detect":
        return ["output0"]
    from edgecv.zoo.tv import WITH_MASKS

    return ["boxes", "scores", "labels", "masks"] if arch.name in WITH_MASKS else ["boxes", "scores", "labels"]


def _torch_export(model: Any, example: Any, out: Path, cfg: ExportConfig, arch: Architecture) -> str:
    """Run torch.onnx.export; the dynamo exporter first (TorchScript is deprecated), then the fallback."""
    torch = require("torch")
    import warnings

    # the dynamo exporter logs a warning per missing torchvision op and prints its steps; keep our output clean
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    order = ["dynamo", "torchscript"] if cfg.exporter == "dynamo" else ["torchscript"]
    errors = []
    for exporter in order:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    kwargs: dict[str, Any] = {}
                    if cfg.dynamic:
                        dim = torch.export.Dim
                        kwargs["dynamic_shapes"] = {
                            "x": {
                                0: dim("batch", min=1, max=max(2, cfg.batch_bounds[2])),
                                2: arch.stride * dim("h", min=1, max=4096 // arch.stride),
                                3: arch.stride * dim("w", min=1, max=4096 // arch.stride),
                            }
                        }
                    torch.onnx.export(
                        model, (example,), str(out), dynamo=True, opset_version=cfg.opset, input_names=["images"],
                        output_names=_output_names(arch), external_data=False, verbose=False, **kwargs,
                    )
                else:
                    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch"}} if cfg.dynamic else None
                    torch.onnx.export(
                        model, (example,), str(out), dynamo=False, opset_version=min(cfg.opset, 20),
                        input_names=["images"], output_names=_output_names(arch), dynamic_axes=axes,
                    )
            return exporter
        except Exception as exc:  # exporters raise many types; report them together
            log.debug("%s exporter failed", exporter, exc_info=True)
            errors.append(f"{exporter}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if len(order) > 1 and exporter == order[0]:
                log.warning("dynamo exporter failed (%s); retrying with the TorchScript exporter", errors[-1])
    raise ExportError("torch.onnx.export failed: " + " | ".join(errors), hint="run with --verbose for the full trace")


def _simplify(onnx_model: Any) -> Any:
    onnxslim = require("onnxslim")
    try:
        return onnxslim.slim(onnx_model)
    except Exception as exc:  # a simplifier bug must not cost the user the export
        log.warning("onnxslim failed (%s); keeping the unsimplified graph", exc)
        return onnx_model


def parity_images(meta: ModelMeta, cfg: ExportConfig) -> list[np.ndarray]:
    """BGR uint8 images for the parity check: the user's, else synthetic shapes scenes (4:3 and square)."""
    import cv2

    images = []
    for path in list(cfg.parity_images)[: cfg.parity_count]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read parity image {path}")
        images.append(image)
    if not images:
        from edgecv.data.synthetic import make_scene

        rng = np.random.default_rng(123)
        h, w = meta.input_size
        shapes = [(h, w), (h * 3 // 4 * 2, w * 2), (h, w * 4 // 3)]
        images = [make_scene(rng, *shapes[i % len(shapes)])[0] for i in range(cfg.parity_count)]
    return images


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime vs PyTorch on the same preprocessed images.

    ``agreement`` is task-level: for detectors the share of PyTorch's detections
    (conf 0.25, NMS IoU 0.45) that ONNX Runtime reproduces with the same class at
    IoU >= 0.9; for segmenters the share of pixels with the same class.
    """

    images: int
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    agreement_metric: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 8) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _agreement(ref: np.ndarray, got: np.ndarray, task: str) -> tuple[int, int]:
    """(matched, total): detections matched at IoU >= 0.9 with the same class, or pixels with the same class."""
    if task == "segment":
        same = ref.argmax(1) == got.argmax(1)
        return int(same.sum()), int(same.size)
    from edgecv.vision.decode import decode_yolov8
    from edgecv.vision.iou import box_iou_coco

    ref_boxes, _, ref_cls = decode_yolov8(ref, 0.25, 0.45)
    got_boxes, _, got_cls = decode_yolov8(got, 0.25, 0.45)
    if not len(ref_boxes) or not len(got_boxes):
        return 0, len(ref_boxes)
    xywh = lambda b: np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1).astype(np.float64)  # noqa: E731
    ious = box_iou_coco(xywh(got_boxes), xywh(ref_boxes), np.zeros(len(ref_boxes), bool))  # (got, ref)
    ious[got_cls[:, None] != ref_cls[None, :]] = 0
    return int((ious.max(0) >= 0.9).sum()), len(ref_boxes)


def _tied(scores: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """(N,) bool: another score of the same output is within the parity tolerance of this one."""
    order = np.argsort(scores, kind="stable")
    s = scores[order].astype(np.float64)
    close = np.diff(s) <= atol + rtol * np.abs(s[1:])
    tied = np.zeros(len(s), bool)
    tied[1:] |= close
    tied[:-1] |= close
    out = np.zeros(len(s), bool)
    out[order] = tied
    return out


def _pair_tv_detections(
    refs: list[np.ndarray], gots: list[np.ndarray], onnx_path: Path, conf: float = 0.25, max_lost: float = 0.05,
    atol: float = 1e-3, rtol: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Pair torchvision detections (boxes (N, 4), scores (N,), labels (N,)) of PyTorch and ONNX Runtime.

    Equal scores may come out of NMS in another order, so each PyTorch detection is paired
    with the unused ONNX Runtime detection of the same label that overlaps it most (IoU >= 0.9).
    Returns the paired values (boxes and score of each pair, flattened) for the tolerance
    check, and (matched, total) over PyTorch's detections scoring >= ``conf`` whose score ties no other.

    Raises:
        ExportError: more than ``max_lost`` of the detections scoring >= ``conf`` have no partner,
            not counting those whose score ties another's (below ``conf``, the in-graph score
            threshold may keep a borderline box in one runtime and not the other).
    """
    (rb, rs, rl), (gb, gs, gl) = refs[:3], gots[:3]
    a, b = rb.astype(np.float64)[:, None], gb.astype(np.float64)[None]
    inter = np.prod(np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None), -1)
    union = np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[..., 2:] - b[..., :2], -1) - inter
    ious = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)  # (ref, got)
    ious[rl[:, None] != gl[None, :]] = 0
    used = np.zeros(len(gb), bool)
    pairs = []
    for i in np.argsort(-rs, kind="stable"):
        cand = np.where(used, 0.0, ious[i])
        if len(cand) and cand.max() >= 0.9:
            j = int(cand.argmax())
            used[j] = True
            pairs.append((int(i), j))
    paired_ref = np.zeros(len(rb), bool)
    paired_ref[[i for i, _ in pairs]] = True
    # a box whose score ties another's (within the parity tolerance) may be kept by one runtime's NMS/top-k and not the other's (both correct)
    lost = int(((rs >= conf) & ~paired_ref & ~_tied(rs, atol, rtol)).sum())
    lost += int(((gs >= conf) & ~used & ~_tied(gs, atol, rtol)).sum())
    confident = int((rs >= conf).sum() + (gs >= conf).sum())
    if lost:
        log.warning("parity: %d of %d detections scoring >= %s have no counterpart", lost, confident, conf)
    # near-equal scores reorder NMS and the top-k cut, which can cascade to a few other boxes: allow 5 %
    if lost > max_lost * confident:
        raise ExportError(
            f"ONNX Runtime and PyTorch disagree: {lost} detections scoring >= {conf} (and not tied) have no counterpart "
            f"(PyTorch {len(rb)}, ONNX Runtime {len(gb)} detections); the file was written to {onnx_path} for inspection",
            hint="report the model; --no-simplify may help",
        )
    ri, gi = np.asarray([p[0] for p in pairs], int), np.asarray([p[1] for p in pairs], int)
    ref = np.concatenate([rb[ri].ravel(), rs[ri]]).astype(np.float32)
    got = np.concatenate([gb[gi].ravel(), gs[gi]]).astype(np.float32)
    counted = (rs >= conf) & ~_tied(rs, atol, rtol)  # agreement over detections whose rank is not a coin toss
    return ref, got, int((paired_ref & counted).sum()), int(counted.sum())


def parity_check(model: Any, onnx_path: Path, meta: ModelMeta, cfg: ExportConfig) -> ParityReport:
    """Compare ONNX Runtime with PyTorch on the parity images, through the runtime's preprocessing.

    Raises:
        ExportError: some element differs by more than ``atol + rtol * |torch|``.
    """
    torch = require("torch")
    import onnxruntime as ort

    from edgecv.vision.letterbox import preprocess

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = total_diff = 0.0
    elements = matched = total = 0
    images = parity_images(meta, cfg)
    for image in images:
        x, _ = preprocess(image, meta)
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        refs = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
        gots = session.run(None, {session.get_inputs()[0].name: x})
        if len(gots) != len(refs):
            raise ExportError(f"the ONNX model has {len(gots)} outputs, PyTorch {len(refs)}")
        if meta.output_format == "tv_detect":  # variable-length detections: compare them pairwise, not by position
            ref, got, m, t = _pair_tv_detections(refs, gots, onnx_path, atol=cfg.atol, rtol=cfg.rtol)
        else:
            for r, g in zip(refs, gots):
                if g.shape != r.shape:
                    raise ExportError(f"ONNX output shape {g.shape} != PyTorch {r.shape} for input {x.shape}")
            ref = np.concatenate([r.astype(np.float32).ravel() for r in refs])
            got = np.concatenate([g.astype(np.float32).ravel() for g in gots])
            m, t = _agreement(refs[0], gots[0], meta.task)
        diff = np.abs(got - ref)
        worst = max(worst, float(diff.max(initial=0.0)))
        total_diff, elements = total_diff + float(diff.sum()), elements + diff.size
        matched, total = matched + m, total + t
        bad = diff > cfg.atol + cfg.rtol * np.abs(ref)
        if bad.any():
            raise ExportError(
                f"ONNX Runtime and PyTorch disagree: max abs diff {diff.max():.3g} on input {x.shape} "
                f"({int(bad.sum())} elements beyond atol {cfg.atol} + rtol {cfg.rtol}); the file was written to {onnx_path} for inspection",
                hint="try --exporter torchscript or --no-simplify, and report the model if it persists",
            )
    report = ParityReport(
        len(images), worst, total_diff / max(elements, 1), matched / total if total else 1.0,
        "detections matched (IoU >= 0.9, same class)" if meta.task == "detect" else "pixels with the same class",
    )
    log.info("parity: max abs diff %.3g, agreement %.4f over %d images", worst, report.agreement, len(images))
    if report.agreement < cfg.tolerance:
        raise ExportError(
            f"ONNX Runtime and PyTorch agree on only {report.agreement:.2%} of {report.agreement_metric} "
            f"(--tolerance {cfg.tolerance:.2%}); the file was written to {onnx_path} for inspection",
            hint="try --exporter torchscript or --no-simplify; lower --tolerance only if the difference is understood",
        )
    return report
