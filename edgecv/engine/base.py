"""The backend protocol and the base class that checks feeds once for every backend."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgecv.artifact import ModelMeta
from edgecv.errors import ConfigError, EngineError


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One graph input or output. ``shape`` uses -1 for a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def accepts(self, array: np.ndarray) -> bool:
        if array.dtype != self.dtype or array.ndim != len(self.shape):
            return False
        return all(want in (-1, got) for want, got in zip(self.shape, array.shape))

    def describe(self) -> str:
        dims = ", ".join("?" if d == -1 else str(d) for d in self.shape)
        return f"{self.name} ({dims}) {np.dtype(self.dtype).name}"


def override_meta(meta: ModelMeta, task: str | None, names: Sequence[str] | None, source: str) -> ModelMeta:
    """Apply ``--task`` / ``--names`` to a model's own metadata (``source``: where it came from, for messages)."""
    if task and task != meta.task:
        raise ConfigError(f"--task {task} conflicts with {source} (task {meta.task})")
    if names is not None:
        if len(names) != meta.num_classes:
            raise ConfigError(f"{len(names)} names given but the model has {meta.num_classes} classes")
        meta = meta.replace(names=tuple(names))
    return meta


@runtime_checkable
class Engine(Protocol):
    """What every backend offers: named tensors in, named tensors out."""

    path: Path
    meta: ModelMeta
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    last_infer_ms: float

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BaseEngine:
    """Implements the public methods once; backends override ``_infer`` and ``_close``.

    ``infer`` checks that the engine is open and that ``feeds`` match ``inputs``
    (names, dtype, shape), then calls ``_infer`` and records ``last_infer_ms``.
    Output arrays may be reused by the backend between calls: copy what you keep.
    Engines are context managers; ``close()`` is idempotent.
    """

    backend = "base"

    def __init__(self, path: Path, meta: ModelMeta, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.path = Path(path)
        self.meta = meta
        self.inputs = inputs
        self.outputs = outputs
        self.last_infer_ms = 0.0
        self._closed = False

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    def input_hw_range(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """((min h, min w), (max h, max w)) the image input accepts, where the backend fixes them
        beyond the graph's own shape (a TensorRT optimization profile); None: any size the graph takes."""
        return None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise EngineError(f"{self.path.name}: engine is closed", hint="load the model again")
        names = {spec.name for spec in self.inputs}
        if set(feeds) != names:
            raise EngineError(
                f"{self.path.name}: expected inputs {sorted(names)}, got {sorted(feeds)}",
                hint="feed exactly the model's inputs (see `edgecv info`)",
            )
        for spec in self.inputs:
            array = feeds[spec.name]
            if not spec.accepts(array):
                raise EngineError(
                    f"{self.path.name}: input {spec.describe()} got {tuple(array.shape)} {array.dtype}",
                    hint="preprocess frames with edgecv.vision.letterbox.preprocess (or use edgecv.load)",
                )
        start = time.perf_counter()
        out = self._infer(feeds)
        self.last_infer_ms = (time.perf_counter() - start) * 1e3
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> BaseEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        return f"{type(self).__name__}({self.path.name}: {ins})"

    # backends implement these
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        pass
