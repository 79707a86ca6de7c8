"""NMS on ONNX Runtime's kernel (edgecv.vision.nms_kernel): the embedded graph is what the build script
makes, the kernel serves exactly the inputs where it keeps torchvision's set and the numpy routes the
rest, and on random candidates of every kind both routes keep the same boxes (torchvision itself is
compared in test_nms.py, which runs on both routes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgecv.vision import nms_kernel
from edgecv.vision.nms import nms

ROOT = Path(__file__).resolve().parents[2]


def _candidates(rng: np.random.Generator, n: int, n_classes: int, *, low: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered boxes with score ties, some zero-area boxes and integer corners (exact IoU values)."""
    k = max(1, n // int(rng.integers(2, 15)))
    centers = rng.uniform(low, 600, (k, 2))
    xy = centers[rng.integers(0, k, n)] + rng.normal(0, rng.uniform(1, 15), (n, 2))
    wh = np.abs(rng.normal(40, 12, (n, 2)))
    wh[rng.random(n) < 0.05] = 0
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if rng.random() < 0.5:
        boxes = np.round(boxes)
    scores = (np.round(rng.random(n) * 20) / 20).astype(np.float32)  # many ties
    return boxes, scores, rng.integers(0, n_classes, n)


def test_embedded_graph_is_the_build_script_output() -> None:
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx is an export extra")
    spec = importlib.util.spec_from_file_location("build_nms_graph", ROOT / "scripts" / "build_nms_graph.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.build() == nms_kernel.GRAPH


@pytest.mark.parametrize("seed", range(4))
def test_kernel_and_numpy_routes_keep_the_same_boxes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 2, 30, 100, 199, 201, 600, 1000, 1001, 1500, 2048):  # around every switch of the kernel route
        for n_classes in (1, 3, 80):
            low = -50.0 if rng.random() < 0.3 else 0.0  # negative corners: one score row (the trick as is)
            boxes, scores, classes = _candidates(rng, n, n_classes, low=low)
            for thr in (0.0, 0.45, 0.7, 1.0):
                for cls in (None, classes):
                    want = nms(boxes, scores, cls, thr, route="numpy")
                    assert nms(boxes, scores, cls, thr).tolist() == want.tolist(), (n, n_classes, thr, cls is None)
                    k = int(rng.integers(0, 20))
                    assert nms(boxes, scores, cls, thr, max_det=k).tolist() == want[:k].tolist()


def test_the_kernel_serves_only_inputs_where_its_arithmetic_is_torchvisions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert nms_kernel.session() is not None  # onnxruntime is a dependency: the kernel is there
    calls: list[int] = []
    greedy = nms_kernel.greedy

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return greedy(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nms_kernel, "greedy", counted)
    boxes, scores, classes = _candidates(np.random.default_rng(7), 300, 5)

    def used(*args: object, **kwargs: object) -> bool:
        calls.clear()
        nms(*args, **kwargs)  # type: ignore[arg-type]
        return bool(calls)

    assert used(boxes, scores, classes, 0.45) and used(boxes, scores, None, 0.0) and used(boxes, scores, None, 1.0)
    assert not used(boxes, scores, classes, 0.45, route="numpy")
    assert not used(boxes.astype(np.float64), scores, None, 0.45)  # torchvision computes in float64 then
    assert not used(boxes, scores, None, -0.1)  # a negative threshold suppresses non-overlapping boxes
    assert not used(boxes, scores, None, 1.5)
    flipped = boxes.copy()
    flipped[0, [0, 2]] = flipped[0, [2, 0]] + np.float32(1)  # x2 < x1: the kernel would reorder the corners
    assert not used(flipped, scores, None, 0.45)
    nan = boxes.copy()
    nan[3, 1] = np.nan
    assert not used(nan, scores, None, 0.45)
    big = np.tile(boxes, (8, 1))
    assert not used(big, np.tile(scores, 8), None, 0.45)  # above 2,048 boxes: the numpy routes


def test_without_onnxruntime_the_numpy_routes_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores, classes = _candidates(np.random.default_rng(3), 150, 4)
    want = nms(boxes, scores, classes, 0.5)
    monkeypatch.setattr(nms_kernel, "_session", [None])
    assert nms_kernel.session() is None
    assert nms(boxes, scores, classes, 0.5).tolist() == want.tolist()
