"""Structured channel pruning (Torch-Pruning) and 2:4 semi-structured sparsity, as a Python API.

``prune(model, example_input, ratio=0.3)`` removes whole channels, following every
coupled layer through Torch-Pruning's dependency graph (concats, residual adds, splits),
and returns the smaller ``nn.Module`` for the user's own fine-tuning loop. Output layers
(detection / segmentation heads, classifiers) keep their channels by default: their
output channels *are* the model's output (box coordinates, class scores).

``apply_2_4(model)`` zeroes the two smallest of every four consecutive input-channel
weights, the pattern Ampere/Orin sparse tensor cores (and TensorRT's
``BuilderFlag.SPARSE_WEIGHTS``) accelerate; ``MaskHolder`` keeps it through fine-tuning
and :func:`onnx_2_4_report` checks an exported ONNX still has it.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

IMPORTANCES = ("l1", "l2", "bn", "lamp", "taylor")


def _importance(tp: Any, name: str) -> Any:
    """Torch-Pruning importance criteria; the magnitude ones are group norms over all coupled layers."""
    factories = {
        "l1": lambda: tp.importance.MagnitudeImportance(p=1),
        "l2": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn": lambda: tp.importance.BNScaleImportance(),
        "lamp": lambda: tp.importance.LAMPImportance(p=2),
        "taylor": lambda: tp.importance.TaylorImportance(),
    }
    if name not in factories:
        raise ConfigError(f"unknown importance {name!r}", hint=f"use one of {', '.join(IMPORTANCES)}")
    return factories[name]()


def _weighted(torch: Any) -> tuple[type, ...]:
    nn = torch.nn
    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def output_layers(model: Any, example_input: Any) -> list[str]:
    """Weighted layers whose output channels reach the model's outputs without passing another weighted layer.

    Found on Torch-Pruning's dependency graph: pruning such a layer's output channels
    touches the input channels of no other Conv/Linear. These are the heads and
    classifiers; pruning them would change what the model outputs.
    """
    torch = require("torch")
    tp = require("torch_pruning")
    graph = _dependency_graph(tp, model, example_input)
    heads = []
    weighted = _weighted(torch)
    names = {module: name for name, module in model.named_modules()}
    for module in model.modules():
        if not isinstance(module, weighted):
            continue
        fn = graph.get_pruner_of_module(module).prune_out_channels
        group = graph.get_pruning_group(module, fn, idxs=[0])
        feeds_another = any(
            isinstance(dep.target.module, weighted)
            and dep.target.module is not module
            and getattr(dep.handler, "__name__", "") in ("prune_in_channels",)
            for dep, _ in group
        )
        if not feeds_another:
            heads.append(names[module])
    return heads


def _dependency_graph(tp: Any, model: Any, example_input: Any) -> Any:
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    except Exception as exc:  # Torch-Pruning raises whatever tracing hits
        raise ExportError(
            f"Torch-Pruning cannot trace {type(model).__name__}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint="pass an example input the model's forward accepts; layers it cannot follow can be excluded with ignore=[...]",
        ) from exc


def _match(model: Any, patterns: Sequence[str]) -> list[Any]:
    """Modules whose qualified name matches any glob pattern (``heads.*.cls``)."""
    found = []
    names = [name for name, _ in model.named_modules() if name]
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"--ignore {pattern!r} matches no layer", hint=f"layer names look like {', '.join(names[:4])}")
        found.extend(hits)
    modules = dict(model.named_modules())
    return [modules[n] for n in dict.fromkeys(found)]


def prune(
    model: Any,
    example_input: Any,
    *,
    ratio: float,
    importance: str = "l2",
    global_pruning: bool = False,
    round_to: int | None = 8,
    ignore: Sequence[str] = (),
    protect_outputs: bool = True,
    loss_fn: Callable[[Any], Any] | None = None,
) -> Any:
    """Remove ``ratio`` of the channels of ``model`` (in place) and return it.

    Args:
        model: an ``nn.Module`` in eval mode (YOLOv8-style C2f blocks are split first, see
            :func:`edgecv.optimize.structure.split_c2f`).
        example_input: a tensor the model's ``forward`` accepts (traced once).
        ratio: share of channels to remove, in (0, 1): per layer (uniform) or over the
            whole network (``global_pruning``).
        importance: l1, l2 (group magnitude), bn (BatchNorm scale), lamp, or taylor (needs ``loss_fn``).
        round_to: keep channel counts multiples of this (8 suits tensor cores and ONNX
            Runtime's blocked CPU kernels); None for exact ratios.
        ignore: glob patterns of layer names never to prune (``heads.*``).
        protect_outputs: also keep :func:`output_layers` intact.
        loss_fn: ``loss_fn(model) -> scalar loss`` on a few calibration batches, for taylor.

    Raises:
        ConfigError: ratio outside (0, 1), unknown importance, taylor without ``loss_fn``.
        ExportError: Torch-Pruning cannot trace the model (the layer is named when known).
    """
    torch = require("torch")
    tp = require("torch_pruning")
    from edgecv.optimize.structure import split_c2f

    if not 0 < ratio < 1:
        raise ConfigError(f"the pruning ratio must be in (0, 1), got {ratio}", hint="e.g. --ratio 0.3 removes 30% of the channels")
    if round_to is not None and round_to < 1:
        raise ConfigError(f"--round-to must be >= 1, got {round_to}")
    if importance == "taylor" and loss_fn is None:
        raise ConfigError("taylor importance needs gradients", hint="pass loss_fn(model) -> loss on a few calibration batches, or use l2")
    criterion = _importance(tp, importance)
    split_c2f(model)
    ignored = _match(model, ignore)
    if protect_outputs:
        ignored += [dict(model.named_modules())[n] for n in output_layers(model, example_input)]
    _dependency_graph(tp, model, example_input)  # a clear error before the pruner's own tracing
    current: dict[str, str] = {}
    names = {module: name for name, module in model.named_modules()}

    def scored(group: Any, **kwargs: Any) -> Any:
        current["layer"] = names.get(group[0].dep.target.module, str(group[0].dep.target))
        return criterion(group, **kwargs)

    pruner = tp.pruner.MetaPruner(
        model,
        example_input,
        importance=scored,
        pruning_ratio=ratio,
        global_pruning=global_pruning,
        ignored_layers=ignored,
        round_to=round_to,
    )
    if importance == "taylor":
        assert loss_fn is not None
        model.zero_grad()
        loss_fn(model).backward()
    try:
        pruner.step()
    except Exception as exc:
        layer = current.get("layer", "?")
        raise ExportError(
            f"Torch-Pruning failed on the channel group of layer {layer!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint=f"exclude it with --ignore '{layer}' (or a pattern covering its block) and prune again",
        ) from exc
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.eval()(example_input)  # the pruned model still runs
    return model


# ------------------------------------------------------------------------- 2:4 sparsity


def sparsifiable(module: Any) -> bool:
    """A Conv2d/Linear whose input channels split into groups of 4 (what sparse tensor cores need)."""
    torch = require("torch")
    if isinstance(module, torch.nn.Conv2d):
        return module.groups == 1 and module.in_channels % 4 == 0 and module.in_channels >= 4
    if isinstance(module, torch.nn.Linear):
        return module.in_features % 4 == 0
    return False


def mask_2_4(weight: Any) -> Any:
    """Boolean mask keeping the 2 largest |w| of every 4 consecutive input channels (per output channel and tap)."""
    torch = require("torch")
    w = weight.detach()
    if w.ndim == 4:  # (out, in, kh, kw) -> groups along "in"
        grouped = w.permute(0, 2, 3, 1).reshape(-1, 4)
    else:
        grouped = w.reshape(-1, 4)
    keep = torch.zeros_like(grouped, dtype=torch.bool)
    keep.scatter_(1, grouped.abs().topk(2, dim=1).indices, True)
    if w.ndim == 4:
        out, cin, kh, kw = w.shape
        return keep.reshape(out, kh, kw, cin).permute(0, 3, 1, 2).contiguous()
    return keep.reshape(w.shape)


def apply_2_4(model: Any, *, ignore: Sequence[str] = (), example_input: Any = None) -> dict[str, Any]:
    """Zero weights into the 2:4 pattern on every sparsifiable layer; returns ``{layer: mask}``.

    Layers matching ``ignore`` and, with ``example_input``, the output layers are left dense.
    """
    torch = require("torch")
    skip = {id(m) for m in _match(model, ignore)}
    if example_input is not None:
        modules = dict(model.named_modules())
        skip |= {id(modules[n]) for n in output_layers(model, example_input)}
    masks = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if id(module) in skip or not sparsifiable(module):
                continue
            mask = mask_2_4(module.weight)
            module.weight.mul_(mask)
            masks[name] = mask
    return masks


class MaskHolder:
    """Re-applies 2:4 masks after each optimizer step, so fine-tuning keeps the pattern."""

    def __init__(self, model: Any, masks: dict[str, Any]) -> None:
        modules = dict(model.named_modules())
        self.pairs = [(modules[name], mask) for name, mask in masks.items()]

    def __call__(self) -> None:
        torch = require("torch")
        with torch.no_grad():
            for module, mask in self.pairs:
                module.weight.mul_(mask)


def has_2_4(weight: np.ndarray) -> bool:
    """True when every group of 4 consecutive input-channel weights has at least 2 zeros."""
    w = np.asarray(weight)
    grouped = np.moveaxis(w, 1, -1).reshape(-1, 4) if w.ndim == 4 else w.reshape(-1, 4)
    return bool(((grouped == 0).sum(axis=1) >= 2).all())


def onnx_2_4_report(model: Any) -> dict[str, Any]:
    """Which Conv weights of an ONNX model hold the 2:4 pattern (after export, BN folding included)."""
    onnx = require("onnx")
    inits = {t.name: t for t in model.graph.initializer}
    sparse, dense = [], []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = onnx.numpy_helper.to_array(inits[node.input[1]])
        if w.ndim != 4 or w.shape[1] % 4:
            continue
        (sparse if has_2_4(w) else dense).append(node.name or node.input[1])
    return {"conv_2_4": len(sparse), "conv_dense": len(dense), "dense_layers": dense}
