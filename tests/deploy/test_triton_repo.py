"""`edgecv deploy triton`: every config.pbtxt is parsed with Triton's own ModelConfig protobuf (tritonclient's
model_config_pb2), and its fields are checked against the artifact (ONNX Runtime's view of the graph, the manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tritonclient")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from edgecv.artifact import ModelMeta, read_sidecar  # noqa: E402
from edgecv.cli import app  # noqa: E402
from edgecv.deploy.pbtxt import Enum, Map, dumps  # noqa: E402
from edgecv.deploy.spec import read_artifact  # noqa: E402
from edgecv.deploy.triton import TritonConfig, write_repository  # noqa: E402
from edgecv.engine.onnxruntime import OnnxRuntimeEngine  # noqa: E402
from edgecv.errors import ArtifactError, ConfigError  # noqa: E402

ORT_TO_TRITON = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8"}


def parse(path: Path) -> ModelConfig:
    return text_format.Parse(path.read_text(), ModelConfig())


def check_against_onnx(config: ModelConfig, onnx_path: Path, batched: bool) -> None:
    """Names, data types and dims in the config are the graph's own (batch dim removed when batched)."""
    with OnnxRuntimeEngine(onnx_path, providers="cpu") as engine:
        for tensors, specs in ((config.input, engine.inputs), (config.output, engine.outputs)):
            assert [t.name for t in tensors] == [s.name for s in specs]
            for t, s in zip(tensors, specs):
                assert DataType.Name(t.data_type) == ORT_TO_TRITON[np.dtype(s.dtype).name]
                want = list(s.shape[1:] if batched else s.shape)
                assert list(t.dims) == (want or [1])
                if batched and not want:
                    assert t.HasField("reshape") and list(t.reshape.shape) == []


@pytest.mark.parametrize(
    ("key", "platform", "fmt"),
    [("det", "onnxruntime_onnx", "yolov8"), ("det_nms", "onnxruntime_onnx", "nms"), ("seg", "onnxruntime_onnx", "seg_logits"),
     ("det_fp16", "onnxruntime_onnx", "yolov8"), ("det_int8", "onnxruntime_onnx", "yolov8")],
)  # fmt: skip
def test_onnx_models(artifacts: dict[str, Path], tmp_path: Path, key: str, platform: str, fmt: str) -> None:
    path = artifacts[key]
    [deployed] = write_repository([path], tmp_path / "repo", TritonConfig(instances=2, queue_delay_us=250))
    folder = tmp_path / "repo" / deployed.name
    config = parse(folder / "config.pbtxt")
    assert config.name == deployed.name == path.stem and config.platform == platform
    assert (folder / "1" / "model.onnx").read_bytes() == path.read_bytes()
    meta = ModelMeta.from_dict(json.loads(config.parameters["edgecv.meta"].string_value))
    assert meta.output_format == fmt and meta == read_artifact(path).meta
    hi = meta.extra["dynamic_batch"]["max"]  # the shipped models' range is 1:1:16
    assert config.max_batch_size == hi == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [hi] and config.dynamic_batching.max_queue_delay_microseconds == 250
    check_against_onnx(config, path, batched=True)
    [group] = config.instance_group
    assert group.count == 2 and group.kind == ModelInstanceGroup.KIND_GPU
    labels = (folder / "labels.txt").read_text().splitlines()
    assert tuple(labels) == meta.names
    labelled = [o.name for o in config.output if o.label_filename]
    assert labelled == (["classes"] if fmt == "nms" else ["output0"])
    if key == "det_fp16":
        assert meta.precision == "fp16" and config.input[0].data_type == DataType.TYPE_FP32  # FP16 graph, FP32 I/O
    if key == "det_int8":
        assert meta.precision == "int8"


def test_nms_outputs_keep_their_types(artifacts: dict[str, Path], tmp_path: Path) -> None:
    [deployed] = write_repository([artifacts["det_nms"]], tmp_path, TritonConfig())
    outputs = {o.name: o for o in parse(deployed.configs[0]).output}
    assert outputs["num_dets"].data_type == DataType.TYPE_INT32 and list(outputs["num_dets"].dims) == [1]
    assert list(outputs["boxes"].dims) == [50, 4] and outputs["classes"].data_type == DataType.TYPE_INT32


def test_fixed_batch_model_has_no_batching(artifacts: dict[str, Path], tmp_path: Path) -> None:
    [deployed] = write_repository([artifacts["static"]], tmp_path, TritonConfig(device="cpu"))
    config = parse(deployed.configs[0])
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 3, 32, 32]  # the full shape, batch dim included
    check_against_onnx(config, artifacts["static"], batched=False)
    assert config.instance_group[0].kind == ModelInstanceGroup.KIND_CPU
    with pytest.raises(ConfigError, match="fixed batch of 1"):
        write_repository([artifacts["static"]], tmp_path / "b", TritonConfig(max_batch=4))


@pytest.mark.parametrize("key", ["engine", "engine_fp16", "engine_int8", "engine_qdq", "engine_nms"])
def test_engines(artifacts: dict[str, Path], tmp_path: Path, key: str) -> None:
    path = artifacts[key]
    meta, info = read_sidecar(path)
    [deployed] = write_repository([path], tmp_path, TritonConfig(gpus=(0, 1)))
    config = parse(deployed.configs[0])
    assert config.platform == "tensorrt_plan"
    assert (tmp_path / deployed.name / "1" / "model.plan").read_bytes() == path.read_bytes()
    check_against_onnx(config, path.parent / info["source_onnx"], batched=True)
    assert json.loads(config.parameters["edgecv.engine"].string_value)["tensorrt"] == info["tensorrt"]
    assert ModelMeta.from_dict(json.loads(config.parameters["edgecv.meta"].string_value)).precision == meta.precision
    expected = {"engine": (8, [4, 8])}.get(key, (16, [16]))
    assert (config.max_batch_size, list(config.dynamic_batching.preferred_batch_size)) == expected  # from --batch 1:4:8 or the default
    assert list(config.instance_group[0].gpus) == [0, 1]
    assert meta.precision == {"engine": "fp32", "engine_fp16": "fp16", "engine_int8": "int8", "engine_qdq": "int8", "engine_nms": "fp32"}[key]


def test_engine_errors(artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runs only on a GPU"):
        write_repository([artifacts["engine"]], tmp_path, TritonConfig(device="cpu"))
    lone = tmp_path / "lone"
    lone.mkdir()
    engine = Path(lone / "det.engine")
    engine.write_bytes(artifacts["engine"].read_bytes())
    (lone / "det.engine.json").write_text(artifacts["engine"].with_name("det.engine.json").read_text())
    with pytest.raises(ArtifactError, match="not next to it") as info:
        write_repository([engine], tmp_path / "r", TritonConfig())
    assert "--onnx" in str(info.value.hint)
    [deployed] = write_repository([engine], tmp_path / "r", TritonConfig(), onnx=artifacts["det"])
    assert parse(deployed.configs[0]).max_batch_size == 8
    assert not list((tmp_path / "r").glob("**/*.tmp*"))


def test_names_and_options(artifacts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both be Triton model 'det'"):
        other = tmp_path / "x"
        other.mkdir()
        write_repository([artifacts["det"], Path(__import__("shutil").copy(artifacts["det"], other / "det.onnx"))], tmp_path / "r", TritonConfig())
    assert not (tmp_path / "r").exists()  # checked before anything is written
    with pytest.raises(ConfigError, match="above"):
        write_repository([artifacts["det"]], tmp_path / "r", TritonConfig(max_batch=32))
    [deployed] = write_repository([artifacts["det"]], tmp_path / "r", TritonConfig(max_batch=4, name="detector", version=3))
    config = parse(deployed.configs[0])
    assert config.name == "detector" and config.max_batch_size == 4 and list(config.dynamic_batching.preferred_batch_size) == [4]
    assert (tmp_path / "r" / "detector" / "3" / "model.onnx").is_file()
    for bad in ({"device": "tpu"}, {"instances": 0}, {"version": 0}, {"name": "a b"}, {"backend": "tf"}, {"gpus": (0,), "device": "cpu"}):
        with pytest.raises(ConfigError):
            TritonConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["det", "det_nms", "seg", "static"])
def test_ensemble_configs_are_valid(artifacts: dict[str, Path], tmp_path: Path, key: str) -> None:
    [deployed] = write_repository([artifacts[key]], tmp_path, TritonConfig(ensemble=True, conf=0.3))
    configs = {p.parent.name: parse(p) for p in deployed.configs}
    name = deployed.name
    assert set(configs) == {name, f"{name}_pre", f"{name}_post", f"{name}_ensemble"}
    ens, pre, post, core = configs[f"{name}_ensemble"], configs[f"{name}_pre"], configs[f"{name}_post"], configs[name]
    assert ens.platform == "ensemble" and pre.backend == post.backend == "python"
    assert [s.model_name for s in ens.ensemble_scheduling.step] == [f"{name}_pre", name, f"{name}_post"]
    # every tensor a step reads is the ensemble's input or written by an earlier step, with the same type
    types = {t.name: t.data_type for t in ens.input}
    models = {f"{name}_pre": pre, name: core, f"{name}_post": post}
    for step in ens.ensemble_scheduling.step:
        model = models[step.model_name]
        ins = {t.name: t.data_type for t in model.input}
        for model_input, tensor in step.input_map.items():
            assert types[tensor] == ins[model_input], (step.model_name, model_input)
        outs = {t.name: t.data_type for t in model.output}
        for model_output, tensor in step.output_map.items():
            types[tensor] = outs[model_output]
    assert {t.name for t in ens.output} <= set(types)
    assert ens.max_batch_size == pre.max_batch_size == post.max_batch_size == (0 if key == "static" else 1)
    want = {"CLASS_MAP"} if key == "seg" else {"BOXES", "SCORES", "CLASSES"}
    assert {t.name for t in ens.output} == want
    assert post.parameters["conf"].string_value == "0.3"
    for model in (f"{name}_pre", f"{name}_post"):
        text = (tmp_path / model / "1" / "model.py").read_text()
        imports = [line for line in text.splitlines() if line.startswith(("import", "from"))]
        assert imports == ["from edgecv.deploy.python_backend import TritonPythonModel  # noqa: F401"]


def test_python_backend_core(artifacts: dict[str, Path], tmp_path: Path) -> None:
    [deployed] = write_repository([artifacts["det"]], tmp_path, TritonConfig(backend="python", device="cpu"))
    config = parse(deployed.configs[0])
    assert config.backend == "python" and not config.platform and config.parameters["edgecv.step"].string_value == "onnxruntime"
    assert (tmp_path / "det" / "1" / "model.onnx").is_file() and (tmp_path / "det" / "1" / "model.py").is_file()
    with pytest.raises(ConfigError, match="runs ONNX files"):
        write_repository([artifacts["engine"]], tmp_path / "e", TritonConfig(backend="python"))


def test_rewrite_replaces_files_atomically(artifacts: dict[str, Path], tmp_path: Path) -> None:
    write_repository([artifacts["det"]], tmp_path, TritonConfig(instances=1))
    write_repository([artifacts["det"]], tmp_path, TritonConfig(instances=3))
    assert parse(tmp_path / "det" / "config.pbtxt").instance_group[0].count == 3
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_pbtxt_writer_round_trips_through_protobuf() -> None:
    text = dumps({
        "name": 'we"ird\\name\n', "max_batch_size": 2, "input": [{"name": "x", "data_type": Enum("TYPE_FP32"), "dims": [3, -1]}],
        "parameters": Map({"k": {"string_value": "ünïcode {json: [1]}"}}), "dynamic_batching": {"preferred_batch_size": []},
    })  # fmt: skip
    config = text_format.Parse(text, ModelConfig())
    assert config.name == 'we"ird\\name\n' and config.parameters["k"].string_value == "ünïcode {json: [1]}"
    assert list(config.input[0].dims) == [3, -1] and config.HasField("dynamic_batching")
    with pytest.raises(text_format.ParseError):
        text_format.Parse(dumps({"input": [{"name": "x", "data_type": Enum("TYPE_FLOAT")}]}), ModelConfig())


def test_cli(artifacts: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "triton", str(artifacts["det"]), str(artifacts["engine_fp16"]), "-o", str(tmp_path / "repo"), "--ensemble"])
    assert result.exit_code == 0, result.output
    assert "tritonserver --model-repository" in result.output
    for folder in ("det", "det_pre", "det_post", "det_ensemble", "det_fp16", "det_fp16_ensemble"):
        parse(tmp_path / "repo" / folder / "config.pbtxt")
    # det.onnx and det.engine would both be model "det": refused with the fix, nothing written
    result = runner.invoke(app, ["deploy", "triton", str(artifacts["det"]), str(artifacts["engine"]), "-o", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "would both be Triton model 'det'" in result.output and "fix:" in result.output
    assert not (tmp_path / "r2").exists()
    result = runner.invoke(app, ["deploy", "triton", str(artifacts["engine"]), "-o", str(tmp_path / "r3"), "--device", "cpu"])
    assert result.exit_code == 2 and "runs only on a GPU" in result.output
