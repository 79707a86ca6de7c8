"""In-graph preprocessing: the uint8 BGR graph must equal host preprocessing + the original graph."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import edgecv  # noqa: E402
from edgecv import assets  # noqa: E402
from edgecv.artifact import ModelMeta  # noqa: E402
from edgecv.data.datasets import open_dataset  # noqa: E402
from edgecv.errors import ExportError  # noqa: E402
from edgecv.export.preprocess import add_preprocess  # noqa: E402
from edgecv.graph.onnx_graph import load_onnx, save_onnx  # noqa: E402
from edgecv.vision.letterbox import preprocess  # noqa: E402


def _meta(model) -> ModelMeta:  # type: ignore[no-untyped-def]
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert meta is not None
    return meta


def _session(model) -> ort.InferenceSession:  # type: ignore[no-untyped-def]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def frames(shapes_val: Path) -> list[np.ndarray]:
    """Shapes images of several aspect ratios (BGR uint8): 4:3, 3:4, square-ish and a 3:1 strip."""
    images = [s.load_image() for s in open_dataset(shapes_val).samples[:3]]
    return [*images, cv2.resize(images[0], (300, 100))]


@pytest.mark.parametrize("name", ["shapes-det", "shapes-seg"])
def test_graph_matches_host_preprocessing(name: str, frames: list[np.ndarray], tmp_path: Path) -> None:
    path = assets.shipped(name)
    model = load_onnx(path)
    meta = _meta(model)
    new_model, new_meta = add_preprocess(model, meta)

    assert (new_meta.preprocess_in_graph, new_meta.dtype, new_meta.layout) == (True, "uint8", "NHWC")
    assert _meta(new_model) == new_meta  # the file carries its new contract
    assert not _meta(model).preprocess_in_graph  # the input model is untouched
    (image,) = new_model.graph.input
    assert image.name == "images" and image.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim] == ["batch", "height", "width", 3]

    before, after = _session(model), _session(new_model)
    shapes = set()
    for frame in frames:
        x, _ = preprocess(frame, meta)  # (1, 3, h, w) float32 RGB
        u, _ = preprocess(frame, new_meta)  # (1, h, w, 3) uint8 BGR
        assert u.dtype == np.uint8 and u.shape == (1, *x.shape[2:], 3)
        shapes.add(u.shape)
        want = before.run(None, {"images": x})[0]
        got = after.run(None, {"images": u})[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
    assert len(shapes) >= 3  # dynamic H/W really exercised

    out = save_onnx(new_model, tmp_path / f"{name}.pre.onnx")
    with edgecv.load(path, conf=0.05) as host, edgecv.load(out, conf=0.05) as graph:
        assert graph.engine.inputs[0].dtype == np.uint8
        for frame in frames:
            a, b = host(frame), graph(frame)
            if meta.task == "detect":
                assert len(a) == len(b) > 0
                np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-3)
                np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
                np.testing.assert_array_equal(b.class_ids, a.class_ids)
            else:
                np.testing.assert_array_equal(b.class_map, a.class_map)


def _identity_model(h: int, w: int) -> onnx.ModelProto:
    """A graph that returns its (1, 3, h, w) float input: shows exactly what preprocessing fed it."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, h, w])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "identity", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("color", "mean", "std"),
    [
        ("RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet
        ("BGR", (0.5, 0.25, 0.0), (0.5, 1.0, 2.0)),
        ("RGB", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ],
)
def test_normalization_math_is_exact(color: str, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    h, w = 6, 10
    meta = ModelMeta("segment", ("a", "b"), (h, w), "seg_logits", color=color, mean=mean, std=std)
    model, new_meta = add_preprocess(_identity_model(h, w), meta)
    onnx.checker.check_model(model, full_check=True)
    bgr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)

    got = _session(model).run(None, {"images": bgr[None]})[0]
    pixels = bgr[..., ::-1] if color == "RGB" else bgr
    want = ((pixels / 255.0 - np.array(mean)) / np.array(std)).transpose(2, 0, 1)[None]
    assert got.shape == (1, 3, h, w) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)
    host, _ = preprocess(bgr, meta)  # the host path, same letterbox-free size
    np.testing.assert_allclose(got, host, atol=1e-6)
    ops = [n.op_type for n in model.graph.node]
    assert ("Gather" in ops) == (color == "RGB") and ("Sub" in ops) == any(mean)


def test_refuses_models_it_cannot_preprocess() -> None:
    meta = ModelMeta("segment", ("a", "b"), (4, 4), "seg_logits")
    model, pre_meta = add_preprocess(_identity_model(4, 4), meta)
    with pytest.raises(ExportError, match="already"):
        add_preprocess(model, pre_meta)

    for dtype, shape in [
        (TensorProto.UINT8, [1, 3, 4, 4]),
        (TensorProto.FLOAT, [1, 4, 4, 3]),
        (TensorProto.FLOAT, [1, 3, 4]),
    ]:
        x = helper.make_tensor_value_info("images", dtype, shape)
        y = helper.make_tensor_value_info("out", dtype, shape)
        graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [x], [y])
        with pytest.raises(ExportError, match="expected float \\(B, 3, H, W\\)") as info:
            add_preprocess(helper.make_model(graph), meta)
        assert "edgecv export" in str(info.value)
