"""ONNX file edits that need the ``onnx`` package: metadata, dim names, atomic save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv._optional import require
from edgecv.artifact import META_PREFIX, ModelMeta, atomic_output
from edgecv.errors import ArtifactError, ExportError


def load_onnx(path: Path) -> Any:
    onnx = require("onnx")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / ValueError variants for corrupt files
        raise ArtifactError(f"{path} is not a readable ONNX model: {exc}", hint="re-export the model") from exc


def set_metadata(model: Any, meta: ModelMeta) -> Any:
    """Replace edgecv's ``metadata_props`` entries (other tools' entries are kept)."""
    kept = [p for p in model.metadata_props if not p.key.startswith(META_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def name_dynamic_dims(model: Any, names: dict[str, list[str | None]]) -> Any:
    """Give readable names to dims of graph inputs/outputs, e.g. ``{"images": ["batch", None, "height", "width"]}``."""
    for value in list(model.graph.input) + list(model.graph.output):
        wanted = names.get(value.name)
        if not wanted:
            continue
        for dim, name in zip(value.type.tensor_type.shape.dim, wanted):
            if name and not dim.HasField("dim_value"):
                dim.dim_param = name
    return model


def save_onnx(model: Any, path: Path) -> Path:
    """Check and write ``model`` atomically as a single file (no external data; models are small)."""
    onnx = require("onnx")
    onnx.checker.check_model(model)
    with atomic_output(Path(path)) as tmp:
        onnx.save_model(model, str(tmp))
    return Path(path)


def dim_value(dim: Any) -> int | str | None:
    """A tensor dim as an int, its symbolic name, or None when it has neither."""
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    return dim.dim_param or None


def tensor_names(graph: Any) -> set[str]:
    """Every tensor name a graph uses (inputs, outputs, value infos, initializers, node I/O)."""
    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def name_nodes(graph: Any) -> None:
    """Give unnamed nodes unique names (graph edits such as FP16 and Q/DQ exclusions work by node name)."""
    taken = {n.name for n in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def toposort(graph: Any) -> None:
    """Sort ``graph.node`` so every node follows its producers (the converter appends its Casts).

    Kahn's algorithm, taking the earliest original node among the ready ones, so an
    already sorted graph keeps its order.
    """
    import heapq

    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        deps = {producer[name] for name in node.input if name in producer}
        waiting[i] = len(deps)
        for dep in deps:
            users.setdefault(dep, []).append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users.get(i, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        raise ExportError("the edited graph has a cycle", hint="report this model with the command that produced it")
    copies = [type(nodes[i])() for i in order]
    for copy, i in zip(copies, order):
        copy.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(copies)


def failed_path(path: Path) -> Path:
    """Where a model that failed its checks is kept for inspection: ``m.onnx`` -> ``m.failed.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix}")
