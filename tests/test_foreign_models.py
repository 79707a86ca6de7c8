"""Foreign ONNX files built in the test: every recognised layout, every refusal, --imgsz, one-channel segmenters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")

from tiny_models import binary_map_model, constant_outputs, declared, op_model  # noqa: E402

import edgecv  # noqa: E402
from edgecv.artifact import grid_cells, infer_meta  # noqa: E402
from edgecv.cli import app  # noqa: E402
from edgecv.errors import ArtifactError, ConfigError  # noqa: E402
from edgecv.export.adopt import adopt_onnx  # noqa: E402
from edgecv.vision.letterbox import letterbox_geometry  # noqa: E402

runner = CliRunner()
SIZE = 64
CELLS = grid_cells((SIZE, SIZE), (8, 16, 32))  # 8x8 + 4x4 + 2x2 = 84


def _one_output(tmp_path: Path, name: str, shape: tuple[int, ...], props: dict[str, str] | None = None) -> Path:
    return constant_outputs(tmp_path / name, [("output0", np.zeros(shape, np.float32))], SIZE, props)


# --------------------------------------------------------------------------- recognised layouts


def test_detector_layouts_are_told_apart_by_the_anchor_count(tmp_path: Path) -> None:
    assert CELLS == 84
    cases = {
        "yolov8": (1, 4 + 3, CELLS),  # (B, 4 + nc, one anchor per cell)
        "yolov5": (1, 3 * CELLS, 5 + 3),  # three anchors per cell, with objectness
        "yolox": (1, CELLS, 5 + 3),  # one anchor per cell, same row layout as YOLOv5
    }
    for fmt, shape in cases.items():
        with edgecv.load(_one_output(tmp_path, f"{fmt}.onnx", shape)) as model:
            assert (model.meta.output_format, model.meta.num_classes) == (fmt, 3)
            assert "8/16/32" in model.meta.extra["layout_reason"]
    yolox = infer_meta([1, 3, SIZE, SIZE], [[1, CELLS, 8]])
    assert (yolox.color, yolox.pad_align, yolox.resize_rounding, yolox.std) == ("BGR", "top-left", "floor", (1 / 255,) * 3)
    p6 = grid_cells((SIZE, SIZE), (8, 16, 32, 64))
    assert infer_meta([1, 3, SIZE, SIZE], [[1, 6, p6]]).output_format == "yolov8"


def test_dynamic_models_use_ultralytics_imgsz_or_dynamic_anchors() -> None:
    m = infer_meta([1, 3, "h", "w"], [[1, 84, "anchors"]])
    assert m.output_format == "yolov8" and m.dynamic and "dynamic anchors" in m.extra["layout_reason"]
    m = infer_meta([1, 3, "h", "w"], [[1, 6, 2100]], foreign_props={"imgsz": "[320, 320]"})
    assert m.output_format == "yolov8" and m.input_size == (320, 320) and "Ultralytics' imgsz" in m.extra["layout_reason"]
    m = infer_meta([1, 3, "h", "w"], [["b", "anchors", 85]], foreign_props={"stride": "32"})
    assert m.output_format == "yolov5"


def test_segmenters_at_a_fixed_fraction_of_the_input() -> None:
    assert infer_meta([1, 3, 64, 64], [[1, 5, 16, 16]]).output_format == "seg_logits"
    m = infer_meta([1, 3, "h", "w"], [[1, 5, "h", "w"]])  # the input's own symbolic size
    assert m.task == "segment" and "dynamic" in m.extra["layout_reason"]
    with pytest.raises(ArtifactError, match=r"not at 1, 1/2, 1/4 or 1/8 of the 64x64 input"):
        infer_meta([1, 3, 64, 64], [[1, 5, 21, 21]])
    with pytest.raises(ArtifactError, match="--task segment"):
        infer_meta([1, 3, "h", "w"], [[1, 5, "oh", "ow"]])
    assert infer_meta([1, 3, "h", "w"], [[1, 5, "oh", "ow"]], task="segment").task == "segment"


# --------------------------------------------------------------------------- refusals


def test_yolov5_vs_yolox_with_dynamic_anchors_needs_layout(tmp_path: Path) -> None:
    path = declared(_one_output(tmp_path, "grids.onnx", (1, CELLS, 7)), input_dims=[1, 3, "h", "w"], output_dims=[["b", "anchors", 7]])
    with pytest.raises(ArtifactError, match="could be YOLOv5 or YOLOX") as info:
        edgecv.load(path)
    assert "--layout yolox" in str(info.value)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 4 and "--layout yolox" in result.output
    report = adopt_onnx(path, tmp_path / "grids.edgecv.onnx", layout="yolox", imgsz=(SIZE, SIZE))
    assert report.meta.output_format == "yolox" and "--layout yolox (given)" in report.meta.extra["layout_reason"]
    with edgecv.load(report.path) as model:
        assert model.meta.resize_rounding == "floor" and model.meta.input_size == (SIZE, SIZE)


def test_an_anchor_count_that_fits_nothing_is_refused(tmp_path: Path) -> None:
    path = _one_output(tmp_path, "odd.onnx", (1, 6, 20))
    with pytest.raises(ArtifactError, match=r"fits no detector layout for a 64x64 input.*84 \(strides 8/16/32\)") as info:
        edgecv.load(path)
    assert "--layout" in info.value.hint
    with pytest.raises(ConfigError, match="--layout yolox does not fit"):
        adopt_onnx(_one_output(tmp_path, "v8.onnx", (1, 7, CELLS)), tmp_path / "x.onnx", layout="yolox")


def test_multi_input_graphs_are_refused_listing_their_inputs(tmp_path: Path) -> None:
    path = op_model(tmp_path / "two.onnx", "Relu", [1, 3, SIZE, SIZE], extra_inputs=[("im_info", [1, 3])])
    with pytest.raises(ArtifactError, match=r"has 2 inputs \(images \(1, 3, 64, 64\) tensor\(float\), im_info \(1, 3\)"):
        edgecv.load(path)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 4 and "im_info" in result.output and "one image input" in result.output


def test_an_output_shaped_like_the_input_is_not_taken_for_a_segmenter(tmp_path: Path) -> None:
    path = op_model(tmp_path / "relu.onnx", "Relu", [1, 3, SIZE, SIZE])
    with pytest.raises(ArtifactError, match="may be an image") as info:
        edgecv.load(path)
    assert "--task segment" in info.value.hint
    result = runner.invoke(app, ["run", str(path), "--max-frames", "1"])
    assert result.exit_code == 4 and "--task segment" in result.output
    with edgecv.load(path, task="segment") as model:  # the user says it is one
        assert model.meta.output_format == "seg_logits" and model.meta.num_classes == 3


def test_other_refusals(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="Ultralytics pose model"):
        infer_meta([1, 3, 640, 640], [[1, 56, 8400]], foreign_props={"task": "pose"})
    with pytest.raises(ArtifactError, match=r"3 outputs"):
        infer_meta([1, 3, 64, 64], [[1, 7, 84], [1, 2], [1, 3]])
    with pytest.raises(ConfigError, match="--task segment does not match"):
        infer_meta([1, 3, 64, 64], [[1, 7, 84]], task="segment")
    with pytest.raises(ConfigError, match="unknown --layout"):
        infer_meta([1, 3, 64, 64], [[1, 7, 84]], layout="yolov9")
    with pytest.raises(ArtifactError, match="input has shape"):
        infer_meta([1, 64, 64], [[1, 7, 84]])


# --------------------------------------------------------------------------- input size


def test_imgsz_on_dynamic_and_static_models(tmp_path: Path) -> None:
    dynamic = binary_map_model(tmp_path / "dyn.onnx", None)
    frame = np.zeros((480, 640, 3), np.uint8)
    with edgecv.load(dynamic, imgsz=(96, 128)) as model:
        feeds, transform = model.preprocess(frame)
        assert next(iter(feeds.values())).shape == (1, 3, 96, 128) and model(frame).class_map.shape == (480, 640)
    with edgecv.load(dynamic, imgsz=128) as model:  # minimal padding: a 4:3 frame becomes 96x128
        assert next(iter(model.preprocess(frame)[0].values())).shape == (1, 3, 96, 128)
    with edgecv.load(dynamic, imgsz=128, square=True) as model:
        assert next(iter(model.preprocess(frame)[0].values())).shape == (1, 3, 128, 128)
    with pytest.raises(ConfigError, match="not a multiple of the model's stride 32") as info:
        edgecv.load(dynamic, imgsz=100)
    assert "--imgsz 128,128" in info.value.hint
    static = binary_map_model(tmp_path / "static.onnx", 64)
    with pytest.raises(ConfigError, match="static.onnx has a fixed input size 64,64; it cannot run at 128,128"):
        edgecv.load(static, imgsz=128)
    with edgecv.load(static, imgsz=64) as model:  # its own size is fine
        assert model.meta.input_size == (64, 64)


def test_export_imgsz_becomes_the_adopted_models_default(tmp_path: Path) -> None:
    source = binary_map_model(tmp_path / "dyn.onnx", None)
    out = tmp_path / "dyn.edgecv.onnx"
    result = runner.invoke(app, ["export", str(source), "--imgsz", "320,416", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "default input size 320,416" in result.output
    info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert info["input_size"] == [320, 416] and info["output_layout"].startswith("recognised: one output (1, 1, height, width)")
    result = runner.invoke(app, ["export", str(binary_map_model(tmp_path / "s.onnx", 64)), "--imgsz", "640", "-o", str(tmp_path / "s2.onnx")])
    assert result.exit_code == 2 and "fixed input size 64,64" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [(",", "one number or H,W"), ("640,480,320", "3 numbers"), ("0", "must be positive"), ("abc", "one number or H,W")],
)
def test_malformed_imgsz_is_a_one_line_error(text: str, message: str) -> None:
    for command in (["run", "--max-frames", "1"], ["bench", "models/shapes-det.onnx", "-n", "1"], ["build-engine", "models/shapes-det.onnx"]):
        result = runner.invoke(app, [*command, "--imgsz", text])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, (command, result.output)


def test_yolox_rounding_truncates_the_resized_size() -> None:
    # 479x640 into 320: scale 0.5 -> 239.5 rows; YOLOX's int() keeps 239, round() gives 240
    assert letterbox_geometry((479, 640), (320, 320), rounding="floor").new == (239, 320)
    assert letterbox_geometry((479, 640), (320, 320)).new == (240, 320)


# --------------------------------------------------------------------------- one-channel segmenters


@pytest.mark.parametrize("sigmoid", [True, False], ids=["prob", "logit"])
def test_one_channel_map_runs_thresholds_and_gives_regions(tmp_path: Path, sigmoid: bool) -> None:
    path = binary_map_model(tmp_path / "text.onnx", SIZE, sigmoid=sigmoid, fraction=4)
    image = np.zeros((48, 64, 3), np.uint8)
    image[8:24, 4:28] = 255  # a bright block ...
    image[32:44, 40:60] = 140  # ... and a dim one (mean 0.55: probability sigmoid(1) = 0.73)
    with edgecv.load(path, names=["text"]) as model:
        assert model.meta.output_format == "seg_binary" and model.meta.extra["binary_map"] == ("prob" if sigmoid else "logit")
        assert model.names == ("background", "text")
        seg = model(image)
        assert seg.class_map.shape == (48, 64) and seg.class_map[12:20, 8:24].min() == 1 and seg.class_map[36:40, 44:56].min() == 1
    with edgecv.load(path, mask_threshold=0.9) as strict:  # the dim block is below 0.9
        assert strict(image).class_map[36:40, 44:56].max() == 0
    with edgecv.load(path, regions=True) as regions:
        dets = regions(image)
    assert len(dets) == 2 and dets.class_names == ["foreground"] * 2 and dets.masks is not None
    np.testing.assert_allclose(dets.xyxy[0], [4, 8, 28, 24], atol=2)  # the bright block scores higher
    np.testing.assert_allclose(dets.xyxy[1], [40, 32, 60, 44], atol=2)
    assert dets.scores[0] > 0.85 and 0.5 < dets.scores[1] < 0.8  # mean probability inside each region


def test_mask_threshold_and_regions_only_fit_one_channel_models(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one-channel segmenters"):
        edgecv.load("models/shapes-seg.onnx", mask_threshold=0.3)
    with pytest.raises(ConfigError, match="is a detector"):
        edgecv.load("models/shapes-det.onnx", regions=True)
    with pytest.raises(ConfigError, match=r"mask_threshold must be in \(0, 1\)"):
        edgecv.load(binary_map_model(tmp_path / "b.onnx"), mask_threshold=1.5)
    result = runner.invoke(app, ["run", "models/shapes-seg.onnx", "--mask-threshold", "0.3", "--max-frames", "1"])
    assert result.exit_code == 2 and "--mask-threshold" in result.output


def test_one_channel_map_without_a_readable_graph_is_refused() -> None:
    with pytest.raises(ArtifactError, match="probabilities or logits"):
        infer_meta([1, 3, 64, 64], [[1, 1, 64, 64]])
    assert infer_meta([1, 3, 64, 64], [[1, 1, 64, 64]], output_ops=["Conv"]).extra["binary_map"] == "logit"


def test_run_and_eval_a_one_channel_segmenter_from_the_cli(tmp_path: Path) -> None:
    import cv2

    root = tmp_path / "blobs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = np.zeros((48, 64, 3), np.uint8)
        y, x = rng.integers(0, 30), rng.integers(0, 40)
        image[y : y + 14, x : x + 20] = 255
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{i}.png"), (image[..., 0] > 0).astype(np.uint8))
    model = binary_map_model(tmp_path / "blob.onnx", SIZE)
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["eval", str(model), "--data", str(root), "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["binary_iou"] > 0.8 and metrics["binary_dice"] >= metrics["binary_iou"]
    jsonl = tmp_path / "run.jsonl"
    result = runner.invoke(app, ["run", str(model), "--source", str(root / "images"), "--regions", "--jsonl", str(jsonl)])
    assert result.exit_code == 0, result.output
    assert jsonl.read_text().count("\n") == 3


def test_silently_ignored_options_are_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "models/shapes-seg.onnx", "--conf", "0.99", "--classes", "42", "--max-frames", "1"])
    assert result.exit_code == 2 and "--conf, --classes apply to detectors" in result.output
    result = runner.invoke(app, ["run", "--threads", "-1", "--max-frames", "1"])
    assert result.exit_code == 2 and "--threads must be >= 1" in result.output
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    result = runner.invoke(app, ["run", str(engine), "--threads", "2", "--max-frames", "1"])
    assert result.exit_code == 2 and "TensorRT engine runs on the GPU" in result.output
    result = runner.invoke(app, ["eval", "models/shapes-det.onnx", "--data", str(tmp_path), "--max-det", "0"])
    assert result.exit_code == 2 and "--max-det must be positive" in result.output


def test_threads_on_tensorrt_engines_in_eval_and_bench(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    result = runner.invoke(app, ["eval", str(engine), "--data", str(tmp_path), "--threads", "2"])
    assert result.exit_code == 2 and "TensorRT engine runs on the GPU" in result.output
    result = runner.invoke(app, ["bench", str(engine), "--threads", "2", "-n", "1"])
    assert result.exit_code == 2 and "every model here is a TensorRT engine" in result.output
    result = runner.invoke(app, ["bench", "models/shapes-det.onnx", "--threads", "0", "-n", "1"])
    assert result.exit_code == 2 and "--threads must be >= 1" in result.output
