"""Rebuildable pruned models: the channel counts of every layer, recorded as plain data.

A pruned model's layers no longer match its architecture's constructor, and pickling
the module would tie the file to our class names (and need ``weights_only=False``).
Instead the checkpoint stores the architecture, a *structure* (every Conv / BatchNorm /
Linear layer's channel attributes, as ints) and the state dict. Loading builds the
architecture, resizes those layers (:func:`apply_structure`) and loads the weights
strictly, with ``torch.load(weights_only=True)``.

:func:`split_c2f` rewrites YOLOv8-style C2f blocks (one 1x1 conv whose output is
``chunk``-ed in two) into two 1x1 convs with the same weights: the outputs are
bit-identical, and Torch-Pruning's dependency graph handles it (it mis-sizes the
``chunk`` of a C2f whose halves feed both a residual block and the concat).
"""

from __future__ import annotations

import functools
from typing import Any

from edgecv._optional import require
from edgecv.errors import ExportError

STRUCTURE_FORMAT = "edgecv-structure-v1"
_ATTRS = {
    "Conv1d": ("in_channels", "out_channels", "groups"),
    "Conv2d": ("in_channels", "out_channels", "groups"),
    "ConvTranspose2d": ("in_channels", "out_channels", "groups"),
    "BatchNorm2d": ("num_features",),
    "BatchNorm1d": ("num_features",),
    "Linear": ("in_features", "out_features"),
}


@functools.cache
def _c2f_split_class() -> Any:
    torch = require("torch")
    from edgecv.zoo.layers import layers

    L = layers()

    class C2fSplit(torch.nn.Module):
        """C2f with its first 1x1 conv split in two (``cv0`` -> first half, ``cv1`` -> second half)."""

        def __init__(self, c_in: int, hidden: int, blocks: Any, cv2: Any) -> None:
            super().__init__()
            self.cv0 = L.ConvBNAct(c_in, hidden, 1)
            self.cv1 = L.ConvBNAct(c_in, hidden, 1)
            self.blocks = blocks
            self.cv2 = cv2

        def forward(self, x):  # type: ignore[no-untyped-def]
            parts = [self.cv0(x), self.cv1(x)]
            for block in self.blocks:
                parts.append(block(parts[-1]))
            return self.cv2(torch.cat(parts, 1))

    return C2fSplit


def split_c2f(model: Any) -> int:
    """Replace every C2f block of ``model`` in place by its split form (same outputs). Returns how many."""
    from edgecv.zoo.layers import layers

    C2f, C2fSplit = layers().C2f, _c2f_split_class()
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, C2f):
                continue
            hidden = child.hidden
            split = C2fSplit(child.cv1.conv.in_channels, hidden, child.blocks, child.cv2)
            for half, rows in ((split.cv0, slice(0, hidden)), (split.cv1, slice(hidden, 2 * hidden))):
                half.conv.weight.data.copy_(child.cv1.conv.weight.data[rows])
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(half.bn, key).data.copy_(getattr(child.cv1.bn, key).data[rows])
                half.bn.eps, half.bn.momentum = child.cv1.bn.eps, child.cv1.bn.momentum
            split.train(child.training)
            setattr(parent, name, split)
            count += 1
    return count


def has_split_c2f(model: Any) -> bool:
    """True when ``model`` holds C2f blocks in their split form (:func:`split_c2f`)."""
    return any(isinstance(m, _c2f_split_class()) for m in model.modules())


def structure_of(model: Any) -> dict[str, Any]:
    """The channel attributes of every resizable layer of ``model`` (plain ints, JSON- and weights_only-safe)."""
    layers = {}
    for name, module in model.named_modules():
        attrs = _ATTRS.get(type(module).__name__)
        if attrs and name:
            layers[name] = {"type": type(module).__name__, **{a: int(getattr(module, a)) for a in attrs}}
    return {"format": STRUCTURE_FORMAT, "c2f_split": has_split_c2f(model), "layers": layers}


def apply_structure(model: Any, structure: dict[str, Any]) -> Any:
    """Resize ``model``'s layers (freshly built from the architecture) to ``structure``; weights are left uninitialised.

    Raises:
        ExportError: the structure does not fit the model (another architecture, or a newer format).
    """
    torch = require("torch")
    if structure.get("format") != STRUCTURE_FORMAT:
        raise ExportError(f"unknown pruned-structure format {structure.get('format')!r}", hint="upgrade edgecv")
    if structure.get("c2f_split"):
        split_c2f(model)
    modules = dict(model.named_modules())
    for name, spec in structure["layers"].items():
        module = modules.get(name)
        if module is None or type(module).__name__ != spec["type"]:
            raise ExportError(
                f"the pruned structure names a {spec['type']} {name!r} that the architecture does not have",
                hint="the checkpoint was pruned from another architecture or width",
            )
        for attr in _ATTRS[spec["type"]]:
            setattr(module, attr, spec[attr])
        empty = lambda *shape: torch.nn.Parameter(torch.empty(*shape))  # noqa: E731
        kind = spec["type"]
        if kind.startswith("Conv"):
            k = tuple(module.weight.shape[2:])
            if kind.startswith("ConvTranspose"):
                module.weight = empty(spec["in_channels"], spec["out_channels"] // spec["groups"], *k)
            else:
                module.weight = empty(spec["out_channels"], spec["in_channels"] // spec["groups"], *k)
            if module.bias is not None:
                module.bias = empty(spec["out_channels"])
        elif kind.startswith("BatchNorm"):
            n = spec["num_features"]
            if module.weight is not None:
                module.weight, module.bias = empty(n), empty(n)
            if module.running_mean is not None:
                module.running_mean, module.running_var = torch.zeros(n), torch.ones(n)
        elif kind == "Linear":
            module.weight = empty(spec["out_features"], spec["in_features"])
            if module.bias is not None:
                module.bias = empty(spec["out_features"])
    return model


def params_and_macs(model: Any, example: Any) -> tuple[int, int]:
    """Parameters and multiply-accumulates of one forward pass at ``example``'s shape (Torch-Pruning's counter)."""
    tp = require("torch_pruning")
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(params), int(macs)
