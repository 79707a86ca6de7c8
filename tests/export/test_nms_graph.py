"""In-graph NMS (edgecv.export.nms) on ONNX Runtime gives exactly the host decode's detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from edgecv.artifact import ModelMeta  # noqa: E402
from edgecv.data.synthetic import make_scene  # noqa: E402
from edgecv.engine import load_engine  # noqa: E402
from edgecv.errors import ConfigError, ExportError  # noqa: E402
from edgecv.export.nms import add_nms  # noqa: E402
from edgecv.graph.onnx_graph import save_onnx  # noqa: E402
from edgecv.vision.decode import decode_nms_outputs, decode_yolov8  # noqa: E402
from edgecv.vision.letterbox import preprocess  # noqa: E402


def _raw_model(nc: int, dtype: int = TensorProto.FLOAT) -> tuple[onnx.ModelProto, ModelMeta]:
    """A graph whose output ``output0`` (B, 4 + nc, A) is its input ``raw``: feed crafted raw outputs."""
    x = helper.make_tensor_value_info("raw", dtype, ["batch", 4 + nc, "anchors"])
    y = helper.make_tensor_value_info("output0", dtype, ["batch", 4 + nc, "anchors"])
    graph = helper.make_graph([helper.make_node("Identity", ["raw"], ["output0"])], "raw", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, ModelMeta("detect", tuple(f"c{i}" for i in range(nc)), (64, 64), "yolov8", dynamic=True)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _nms_run(raw: np.ndarray, *, conf: float, iou: float, max_det: int) -> dict[str, np.ndarray]:
    model, meta = _raw_model(raw.shape[1] - 4, TensorProto.FLOAT16 if raw.dtype == np.float16 else TensorProto.FLOAT)
    with_nms, _ = add_nms(model, meta, iou=iou, conf=conf, max_det=max_det)
    sess = _session(with_nms)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"raw": raw})))


def _assert_same(outputs: dict[str, np.ndarray], raw: np.ndarray, *, conf: float, iou: float, max_det: int, atol: float = 0.0) -> int:
    """Graph detections of image 0 == decode_yolov8 on the raw output; padding rows are zero. Returns the count."""
    want = decode_yolov8(raw, conf, iou, max_det=max_det)
    got = decode_nms_outputs(outputs)
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=atol)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    n = int(outputs["num_dets"][0, 0])
    assert n == len(want[0]) and outputs["boxes"].shape == (raw.shape[0], max_det, 4)
    assert not outputs["boxes"][0, n:].any() and not outputs["scores"][0, n:].any() and not outputs["classes"][0, n:].any()
    assert [outputs[k].dtype for k in ("num_dets", "boxes", "scores", "classes")] == [np.int32, np.float32, np.float32, np.int32]
    return n


def _raw(boxes: list[tuple[float, float, float, float]], scores: list[list[float]], anchors: int | None = None) -> np.ndarray:
    """(1, 4 + nc, A) raw output from cx, cy, w, h boxes and per-class scores (other anchors: all zero)."""
    anchors = anchors or len(boxes)
    raw = np.zeros((1, 4 + len(scores[0]), anchors), np.float32)
    raw[0, :4, : len(boxes)] = np.asarray(boxes, np.float32).T
    raw[0, 4:, : len(boxes)] = np.asarray(scores, np.float32).T
    return raw


# ---------------------------------------------------------------- the shipped detector on real images
@pytest.fixture(scope="module")
def shipped(det_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ort.InferenceSession, ModelMeta, onnx.ModelProto]:
    with load_engine(det_onnx) as engine:
        meta = engine.meta
    return _session(onnx.load(str(det_onnx))), meta, onnx.load(str(det_onnx))


@pytest.mark.parametrize(
    ("conf", "iou", "max_det", "size"),
    [(0.25, 0.45, 100, (256, 256)), (0.01, 0.45, 100, (256, 256)), (0.001, 0.3, 20, (320, 320)),
     (1e-5, 0.7, 300, (256, 256)), (1e-5, 0.45, 1000, (480, 640))],  # 1e-5: hundreds / > 1000 candidates
)
def test_shipped_detector_matches_host_decode(
    shipped: tuple, tmp_path: Path, conf: float, iou: float, max_det: int, size: tuple[int, int]
) -> None:
    raw_sess, meta, model = shipped
    with_nms, nms_meta = add_nms(model, meta, iou=iou, conf=conf, max_det=max_det)
    path = save_onnx(with_nms, tmp_path / "det-nms.onnx")
    with load_engine(path) as engine:
        assert engine.meta == nms_meta and engine.meta.output_format == "nms"
        counts, candidates = [], []
        for seed in range(6):
            image = make_scene(np.random.default_rng(seed), 240, 320, max_objects=8)[0]
            x, _ = preprocess(image, meta.replace(input_size=size))  # the model is dynamic
            raw = raw_sess.run(None, {"images": x})[0]
            candidates.append(int((raw[0, 4:].max(0) > conf).sum()))
            counts.append(_assert_same(engine.infer({"images": x}), raw, conf=conf, iou=iou, max_det=max_det, atol=1e-4))
    assert sum(counts) > 0
    if conf < 1e-4:
        assert min(candidates) > 300 and sum(counts) < sum(candidates)  # NMS had work to do
    if size == (480, 640):
        assert min(candidates) > 1000  # the host's per-class NMS path (no coordinate trick)


def test_batch_of_two_equals_each_alone(shipped: tuple) -> None:
    raw_sess, meta, model = shipped
    sess = _session(add_nms(model, meta, iou=0.5, conf=0.05, max_det=50)[0])
    xs = [preprocess(make_scene(np.random.default_rng(seed), 256, 256)[0], meta)[0] for seed in (11, 12)]
    both = dict(zip(["num_dets", "boxes", "scores", "classes"], sess.run(None, {"images": np.concatenate(xs)})))
    assert both["num_dets"].shape == (2, 1)
    for i, x in enumerate(xs):
        alone = dict(zip(["num_dets", "boxes", "scores", "classes"], sess.run(None, {"images": x})))
        for key, value in alone.items():
            np.testing.assert_array_equal(both[key][i : i + 1], value, err_msg=key)
        _assert_same({k: v[i : i + 1] for k, v in both.items()}, raw_sess.run(None, {"images": x})[0], conf=0.05, iou=0.5, max_det=50, atol=1e-4)
    assert not np.array_equal(both["boxes"][0], both["boxes"][1])


def test_batch_of_crafted_outputs_is_exact_per_image() -> None:
    rng = np.random.default_rng(7)
    raw = _clustered(rng, 3, 400, batch=3)
    out = _nms_run(raw, conf=0.1, iou=0.45, max_det=60)
    for i in range(3):
        _assert_same({k: v[i : i + 1] for k, v in out.items()}, raw[i : i + 1], conf=0.1, iou=0.45, max_det=60)


# ---------------------------------------------------------------- crafted raw outputs
def _clustered(rng: np.random.Generator, nc: int, anchors: int, batch: int = 1, step: float = 0.05) -> np.ndarray:
    """Boxes in overlapping clusters on a half-pixel grid (exact in float32 after class offsets), tied scores."""
    raw = np.zeros((batch, 4 + nc, anchors), np.float32)
    centers = rng.integers(20, 300, (batch, 2, 8))
    pick = rng.integers(0, 8, (batch, anchors))
    for b in range(batch):
        raw[b, :2] = centers[b][:, pick[b]] + rng.integers(-6, 7, (2, anchors))
    raw[:, 2:4] = rng.integers(8, 60, (batch, 2, anchors))
    raw[:, 4:] = np.round(rng.random((batch, nc, anchors)) / step) * step  # quantized: many ties
    return raw


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("anchors", "nc"), [(300, 3), (1600, 2)])  # host: coordinate trick / per-class NMS
def test_random_clusters_with_ties(seed: int, anchors: int, nc: int) -> None:
    raw = _clustered(np.random.default_rng(seed), nc, anchors)
    for conf, iou, max_det in [(0.2, 0.45, 100), (0.0, 0.3, 300), (0.5, 0.7, 25)]:
        _assert_same(_nms_run(raw, conf=conf, iou=iou, max_det=max_det), raw, conf=conf, iou=iou, max_det=max_det)


def test_equal_scores_keep_the_lower_anchor_and_sort_by_anchor() -> None:
    # anchors 0-2 overlap (IoU > 0.45) with one score: anchor 0 wins; 3 and 4 are apart, tied with 0
    boxes = [(50, 50, 40, 40), (52, 50, 40, 40), (50, 52, 40, 40), (200, 50, 40, 40), (300, 50, 40, 40), (400, 50, 40, 40)]
    raw = _raw(boxes, [[0.6], [0.6], [0.6], [0.6], [0.6], [0.7]])
    out = _nms_run(raw, conf=0.25, iou=0.45, max_det=10)
    assert _assert_same(out, raw, conf=0.25, iou=0.45, max_det=10) == 4
    np.testing.assert_array_equal(out["boxes"][0, :4, 0], [380, 30, 180, 280])  # 0.7 first, then ties by anchor


def test_iou_exactly_at_the_threshold() -> None:
    # IoU([0,0,4,2], [0,0,2,2]) = 4 / 8 = 0.5 exactly: kept at iou=0.5 (strict >), dropped below
    raw = _raw([(2, 1, 4, 2), (1, 1, 2, 2)], [[0.9, 0.0], [0.8, 0.0]])
    assert _assert_same(_nms_run(raw, conf=0.1, iou=0.5, max_det=10), raw, conf=0.1, iou=0.5, max_det=10) == 2
    assert _assert_same(_nms_run(raw, conf=0.1, iou=0.4999, max_det=10), raw, conf=0.1, iou=0.4999, max_det=10) == 1
    # IoU 3 / 5 is float32(0.6) = 0.6000000238 > 0.6: the host drops it; a plain float32(0.6) threshold would not
    raw = _raw([(2.5, 0.5, 5, 1), (1.5, 0.5, 3, 1), (102.5, 0.5, 5, 1), (101.5, 0.5, 3, 1)], [[0.9, 0], [0.8, 0], [0, 0.9], [0, 0.8]])
    assert _assert_same(_nms_run(raw, conf=0.1, iou=0.6, max_det=10), raw, conf=0.1, iou=0.6, max_det=10) == 2


def test_more_candidates_than_max_det_keeps_the_best() -> None:
    rng = np.random.default_rng(3)
    n = 500
    boxes = [(20.0 * (i % 25) + 10, 20.0 * (i // 25) + 10, 10, 10) for i in range(n)]  # disjoint
    raw = _raw(boxes, rng.permutation(n)[:, None].astype(np.float32) / n * 0.9 + 0.05)
    out = _nms_run(raw, conf=0.25, iou=0.45, max_det=100)
    assert _assert_same(out, raw, conf=0.25, iou=0.45, max_det=100) == 100
    assert np.all(np.diff(out["scores"][0]) < 0)


def test_no_detections_and_fewer_anchors_than_max_det() -> None:
    raw = _raw([(10, 10, 5, 5), (30, 30, 5, 5)], [[0.2, 0.1], [0.25, 0.0]], anchors=6)
    out = _nms_run(raw, conf=0.25, iou=0.45, max_det=100)  # 0.25 is not > 0.25
    assert _assert_same(out, raw, conf=0.25, iou=0.45, max_det=100) == 0
    assert out["num_dets"].tolist() == [[0]] and out["boxes"].shape == (1, 100, 4)
    assert _assert_same(_nms_run(raw, conf=0.0, iou=0.45, max_det=100), raw, conf=0.0, iou=0.45, max_det=100) == 2


def test_classes_are_separate_and_single_label() -> None:
    # same box, classes 0 / 1 / 2: no cross-class suppression; anchor 3 ties classes 1 and 2 -> class 1 (first max);
    # anchor 4's second class (0.85) exceeds conf but only its best class (2) may be reported
    boxes = [(50, 50, 30, 30)] * 3 + [(200, 200, 30, 30), (50, 50, 31, 31)]
    scores = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.3, 0.7], [0.1, 0.6, 0.6], [0.85, 0.0, 0.95]]
    raw = _raw(boxes, scores)
    out = _nms_run(raw, conf=0.25, iou=0.45, max_det=10)
    assert _assert_same(out, raw, conf=0.25, iou=0.45, max_det=10) == 4
    assert out["classes"][0, :4].tolist() == [2, 0, 1, 1]


def test_float16_output_is_read_as_float32() -> None:
    raw = _clustered(np.random.default_rng(1), 2, 200).astype(np.float16)
    _assert_same(_nms_run(raw, conf=0.2, iou=0.45, max_det=50), raw, conf=0.2, iou=0.45, max_det=50)


# ---------------------------------------------------------------- host reader
def test_decode_nms_outputs_filters_on_top_of_the_graph() -> None:
    raw = _clustered(np.random.default_rng(5), 3, 300)
    out = _nms_run(raw, conf=0.1, iou=0.45, max_det=300)
    seq = [out[k] for k in ("num_dets", "boxes", "scores", "classes")]
    trt_names = dict(zip(["num_detections", "detection_boxes", "detection_scores", "detection_classes"], seq))
    for same in (seq, trt_names):
        for a, b in zip(decode_nms_outputs(same), decode_nms_outputs(out)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(decode_nms_outputs(out, conf=0.6), decode_yolov8(raw, 0.6, 0.45, max_det=300)):  # raising conf is exact
        np.testing.assert_array_equal(a, b)
    xyxy, scores, class_ids = decode_nms_outputs(out, classes=[1, 2], max_det=5)
    assert len(scores) == 5 and set(class_ids.tolist()) <= {1, 2} and np.all(np.diff(scores) <= 0)
    assert xyxy.dtype == np.float32 and class_ids.dtype == np.int32
    with pytest.raises(ValueError, match="missing"):
        decode_nms_outputs({"boxes": out["boxes"]})
    with pytest.raises(ValueError, match="expected NMS outputs"):
        decode_nms_outputs([out["num_dets"], out["scores"], out["scores"], out["classes"]])


# ---------------------------------------------------------------- EfficientNMS_TRT, metadata, errors
def test_efficient_kind_structure(shipped: tuple, tmp_path: Path) -> None:
    _, meta, model = shipped
    with_nms, nms_meta = add_nms(model, meta, iou=0.5, conf=0.3, max_det=50, kind="efficient")
    onnx.checker.check_model(with_nms, full_check=False)
    node = with_nms.graph.node[-1]
    assert node.op_type == "EfficientNMS_TRT" and list(node.output) == ["num_dets", "boxes", "scores", "classes"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["background_class"] == -1 and attrs["box_coding"] == 0 and attrs["max_output_boxes"] == 50
    assert attrs["score_activation"] == 0 and attrs["class_agnostic"] == 0 and attrs["plugin_version"] == b"1"
    assert attrs["iou_threshold"] == pytest.approx(0.5) and attrs["score_threshold"] == pytest.approx(0.3)
    shapes = {
        o.name: (o.type.tensor_type.elem_type, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim])
        for o in with_nms.graph.output
    }
    assert shapes == {
        "num_dets": (TensorProto.INT32, ["batch", 1]),
        "boxes": (TensorProto.FLOAT, ["batch", 50, 4]),
        "scores": (TensorProto.FLOAT, ["batch", 50]),
        "classes": (TensorProto.INT32, ["batch", 50]),
    }
    assert nms_meta.extra["nms"] == {"kind": "efficient", "iou": 0.5, "conf": 0.3, "max_det": 50, "class_aware": True}
    assert ModelMeta.from_props({p.key: p.value for p in with_nms.metadata_props}) == nms_meta
    save_onnx(with_nms, tmp_path / "eff.onnx")  # passes the checker save_onnx runs
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime has no EfficientNMS_TRT kernel: expected
        _session(with_nms)


def test_metadata_and_input_left_alone(shipped: tuple) -> None:
    _, meta, model = shipped
    before = model.SerializeToString()
    with_nms, nms_meta = add_nms(model, meta)
    assert model.SerializeToString() == before
    assert (nms_meta.output_format, nms_meta.nms_in_graph, nms_meta.names) == ("nms", True, meta.names)
    assert nms_meta.extra["nms"] == {"kind": "onnx", "iou": 0.45, "conf": 0.25, "max_det": 100, "class_aware": True}
    assert ModelMeta.from_props({p.key: p.value for p in with_nms.metadata_props}) == nms_meta
    with pytest.raises(ExportError, match="already has NMS"):
        add_nms(with_nms, nms_meta)


def test_errors_on_graphs_that_are_not_yolov8(shipped: tuple) -> None:
    _, meta, model = shipped
    seg_out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 64, 64])
    seg = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], "seg",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 64, 64])], [seg_out]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(ExportError, match="expected \\(B, 8, anchors\\)"):
        add_nms(seg, meta)
    with pytest.raises(ExportError, match="output format 'seg_logits'"):
        add_nms(seg, ModelMeta("segment", meta.names, (64, 64), "seg_logits"))
    raw3, _ = _raw_model(3)
    with pytest.raises(ExportError, match="for 4 classes"):  # 3 classes in the graph, 4 names
        add_nms(raw3, meta)
    two = onnx.ModelProto()
    two.CopyFrom(raw3)
    two.graph.output.append(helper.make_tensor_value_info("raw", TensorProto.FLOAT, None))
    with pytest.raises(ExportError, match="one output"):
        add_nms(two, meta)
    old = onnx.ModelProto()
    old.CopyFrom(model)
    old.opset_import[0].version = 10
    with pytest.raises(ExportError, match="opset >= 11"):
        add_nms(old, meta)
    with pytest.raises(ConfigError, match="did you mean 'efficient'"):
        add_nms(model, meta, kind="efficent")
    with pytest.raises(ConfigError):
        add_nms(model, meta, conf=1.5)
    with pytest.raises(ConfigError):
        add_nms(model, meta, max_det=0)
