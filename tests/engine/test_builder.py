"""build-engine's pure parts: precision planning per TensorRT major, profiles, manifests; the builder against a documented fake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnx")

import fake_trt  # noqa: E402

from edgecv.artifact import ModelMeta, read_sidecar  # noqa: E402
from edgecv.engine.builder import BuildOptions, build_engine, profile_shapes  # noqa: E402
from edgecv.engine.manifest import check_compatible  # noqa: E402
from edgecv.engine.trt_compat import plan_build  # noqa: E402
from edgecv.errors import ConfigError, EngineError  # noqa: E402


@pytest.mark.parametrize(
    ("major", "graph", "requested", "expect"),
    [
        (10, "fp32", "auto", ("as-is", True, (), "fp32")),
        (11, "fp32", "auto", ("as-is", True, (), "fp32")),
        (10, "fp32", "fp16", ("fp16", True, (), "fp16")),  # precision lives in the graph on both majors
        (11, "fp32", "fp16", ("fp16", True, (), "fp16")),
        (11, "fp16", "fp16", ("as-is", True, (), "fp16")),
        (10, "int8", "int8", ("as-is", True, (), "int8")),
        (11, "int8", "auto", ("as-is", True, (), "int8")),
        (10, "fp32", "best", ("as-is", False, ("FP16",), "best")),  # TensorRT 10 weak typing
        (10, "int8", "best", ("as-is", False, ("FP16", "INT8"), "best")),
        (11, "int8", "best", ("as-is", True, (), "int8")),  # strongly typed: the graph as given
    ],
)
def test_plan_maps_precision_per_major(major: int, graph: str, requested: str, expect: tuple) -> None:
    plan = plan_build(major, graph, requested)
    assert (plan.graph, plan.strongly_typed, plan.flags, plan.precision) == expect


def test_plan_int8_paths_and_refusals() -> None:
    with pytest.raises(ConfigError, match="edgecv calibrate") as info:
        plan_build(10, "fp32", "int8")
    assert "--calib-cache" in info.value.hint
    legacy = plan_build(10, "fp32", "int8", calib_cache="m.calib")
    assert legacy.flags == ("INT8", "FP16") and not legacy.strongly_typed and legacy.implicit_int8_cache == "m.calib"
    with pytest.raises(ConfigError, match="TensorRT 11 has no implicit INT8"):
        plan_build(11, "fp32", "int8", calib_cache="m.calib")
    with pytest.raises(ConfigError, match="INT8 Q/DQ"):
        plan_build(11, "int8", "fp16")
    with pytest.raises(ConfigError, match="DLA runs FP16 or INT8"):
        plan_build(10, "fp32", "auto", dla=True)
    dla10 = plan_build(10, "fp16", "auto", dla=True, gpu_fallback=True, sparsity=True, version_compatible=True)
    assert dla10.flags == ("SPARSE_WEIGHTS", "GPU_FALLBACK", "FP16", "VERSION_COMPATIBLE") and not dla10.strongly_typed
    assert plan_build(10, "int8", "auto", dla=True).flags == ("FP16", "INT8")  # the Q/DQ graph, weakly typed for DLA
    dla11 = plan_build(11, "fp16", "auto", dla=True, gpu_fallback=True)
    assert dla11.flags == ("GPU_FALLBACK",) and dla11.strongly_typed


def test_profile_shapes_from_metadata() -> None:
    meta = ModelMeta("detect", ("a",), (256, 320), "yolov8", dynamic=True, stride=32, extra={"dynamic_batch": {"min": 1, "opt": 4, "max": 8}})
    assert profile_shapes(meta, (-1, 3, -1, -1)) == ((1, 3, 64, 64), (4, 3, 256, 320), (8, 3, 256, 320))
    assert profile_shapes(meta, (-1, 3, 256, 320), batch=(2, 2, 2)) == ((2, 3, 256, 320),) * 3
    nhwc = meta.replace(preprocess_in_graph=True, layout="NHWC")
    assert profile_shapes(nhwc, (-1, -1, -1, 3))[2] == (8, 256, 320, 3)
    with pytest.raises(ConfigError, match="batch is fixed"):
        profile_shapes(meta, (1, 3, 256, 320), batch=(1, 4, 8))


@pytest.fixture
def onnx_copy(det_onnx: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(det_onnx, tmp_path / "det.onnx"))


@pytest.mark.parametrize("version", ["10.3.0", "11.1.0"])
def test_build_writes_plan_manifest_and_profile(onnx_copy: Path, version: str) -> None:
    trt = fake_trt.make(version)
    phases: list[tuple[str, int, int]] = []
    report = build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(workspace_mb=512), progress=lambda *a: phases.append(a), trt=trt)
    builder = trt._last_builder
    assert builder._network.flags == (1 << 1 if version.startswith("10") else 0)  # strongly typed (implicit on 11)
    assert builder._config._pool == (trt.MemoryPoolType.WORKSPACE, 512 << 20)
    assert builder._config._profiles[0]._shapes["images"] == ((1, 3, 64, 64), (1, 3, 256, 256), (16, 3, 256, 256))
    assert report.path.read_bytes().startswith(b"PLAN:") and phases[-1] == ("Building engine", 2, 2)
    meta, info = read_sidecar(report.path)
    assert meta.precision == "fp32" and meta.names == ("circle", "rectangle", "triangle", "star")
    assert info["tensorrt"] == version and info["source_onnx"] == "det.onnx" and len(info["source_sha256"]) == 16
    assert info["build_command"].startswith("edgecv build-engine") and "--workspace 512" in info["build_command"]


def test_fp16_on_tensorrt11_converts_the_graph(onnx_copy: Path) -> None:
    trt = fake_trt.make("11.1.0")  # has no BuilderFlag.FP16: setting it would raise
    report = build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(precision="fp16"), trt=trt)
    assert report.precision == "fp16" and trt._last_builder._config.flags == set()
    assert read_sidecar(report.path)[0].extra["fp16"]["kept_fp32_nodes"] > 0


def test_best_on_tensorrt10_uses_weak_typing(onnx_copy: Path) -> None:
    trt = fake_trt.make("10.3.0")
    build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(precision="best", sparsity=True), trt=trt)
    assert trt._last_builder._network.flags == 0 and trt._last_builder._config.flags == {"FP16", "SPARSE_WEIGHTS"}


def test_implicit_int8_from_a_cache_on_tensorrt10(onnx_copy: Path, tmp_path: Path) -> None:
    from edgecv.engine.trt_cache import write_cache

    cache = write_cache(tmp_path / "det.calib", {"images": 1.0})
    trt = fake_trt.make("10.3.0")
    build_engine(onnx_copy, tmp_path / "det.engine", BuildOptions(precision="int8", calib_cache=cache), trt=trt)
    config = trt._last_builder._config
    assert config.flags == {"INT8", "FP16"} and config._calibration_profile is config._profiles[0]
    assert config.int8_calibrator.read_calibration_cache() == cache.read_bytes()


def test_timing_cache_is_read_and_written(onnx_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    build_engine(onnx_copy, tmp_path / "a.engine", BuildOptions(timing_cache=cache), trt=fake_trt.make("10.3.0"))
    assert cache.read_bytes() == b"timing:old"
    assert read_sidecar(tmp_path / "a.engine")[1]["timing_cache_sha256"]


def test_parser_errors_name_the_nodes(onnx_copy: Path) -> None:
    trt = fake_trt.make("10.3.0", parse_errors=[("Unsupported operator", 12, "/head/Custom", "MyOp")])
    with pytest.raises(EngineError, match=r"node '/head/Custom' \(MyOp\): Unsupported operator"):
        build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), trt=trt)
    assert not onnx_copy.with_suffix(".engine").exists()


def test_device_and_build_failures(onnx_copy: Path) -> None:
    with pytest.raises(ConfigError, match="no DLA cores"):
        build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(precision="fp16", dla_core=0), trt=fake_trt.make("10.3.0"))
    trt = fake_trt.make("10.3.0", dla_cores=2)
    build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(precision="fp16", dla_core=1, gpu_fallback=True), trt=trt)
    assert trt._last_builder._config.DLA_core == 1 and trt._last_builder._config.flags == {"GPU_FALLBACK", "FP16"}
    assert trt._last_builder._network.flags == 0  # DLA on TensorRT 10: weakly typed, precision from the flags
    with pytest.raises(ConfigError, match="--hardware-compat same-cc needs a newer TensorRT than 10.3.0"):
        build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(hardware_compat="same-cc"), trt=trt)
    build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(hardware_compat="same-cc"), trt=fake_trt.make("10.9.0"))
    with pytest.raises(EngineError, match="could not build"):
        build_engine(onnx_copy, onnx_copy.with_suffix(".x.engine"), trt=fake_trt.make("10.3.0", build_fails=True))
    assert not onnx_copy.with_suffix(".x.engine").exists()


def test_manifest_compatibility() -> None:
    info = {"tensorrt": "10.3.0", "compute_capability": "8.7", "gpu": "Orin", "build_command": "edgecv build-engine m.onnx -o m.engine --fp16"}
    check_compatible(info, {"tensorrt": "10.3.0", "compute_capability": "8.7"}, Path("m.engine"))
    with pytest.raises(EngineError, match=r"built with TensorRT 10.3.0, this machine has TensorRT 10.7.0") as err:
        check_compatible(info, {"tensorrt": "10.7.0", "compute_capability": "8.7"}, Path("m.engine"))
    assert err.value.hint == "rebuild it on this machine: edgecv build-engine m.onnx -o m.engine --fp16"
    check_compatible({**info, "version_compatible": True}, {"tensorrt": "11.1.0", "compute_capability": "8.7"}, Path("m.engine"))
    check_compatible({**info, "version_compatible": True}, {"tensorrt": "10.7.0", "compute_capability": "8.7"}, Path("m.engine"))
    with pytest.raises(EngineError, match="built with TensorRT 10.3.0, this machine has TensorRT 10.2.0"):  # never an older runtime
        check_compatible({**info, "version_compatible": True}, {"tensorrt": "10.2.0", "compute_capability": "8.7"}, Path("m.engine"))
    with pytest.raises(EngineError, match=r"built for Orin \(sm_87\), this GPU is RTX 4090 \(sm_89\)"):
        check_compatible(info, {"tensorrt": "10.3.0", "compute_capability": "8.9", "gpu": "RTX 4090"}, Path("m.engine"))
    check_compatible({**info, "hardware_compat": "ampere+"}, {"tensorrt": "10.3.0", "compute_capability": "8.9"}, Path("m.engine"))


def test_engine_without_tensorrt_is_one_line(onnx_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from typer.testing import CliRunner

    from edgecv.cli import app

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    build_engine(onnx_copy, tmp_path / "m.engine", trt=fake_trt.make("10.3.0"))
    runner = CliRunner()
    for args in (["run", str(tmp_path / "m.engine"), "--source", str(onnx_copy)], ["build-engine", str(onnx_copy)]):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 3 and "pip install 'edgecv[tensorrt]'" in text and "python3-libnvinfer" in text, text
    info = runner.invoke(app, ["info", str(tmp_path / "m.engine"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["engine"]["tensorrt"] == "10.3.0"


def test_int8_with_calibration_images_makes_the_qdq_graph_then_builds_it(onnx_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT 11 has only Q/DQ INT8: `build-engine --int8 --calib IMAGES` calibrates on the fly."""
    import sys

    from typer.testing import CliRunner

    from edgecv.cli import app
    from edgecv.data.synthetic import write_coco_dataset

    write_coco_dataset(tmp_path / "calib", 24, seed=7)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt.make("11.1.0"))
    runner = CliRunner()
    refused = runner.invoke(app, ["build-engine", str(onnx_copy), "--int8"])
    assert refused.exit_code == 2 and "edgecv calibrate" in " ".join(refused.output.split())
    result = runner.invoke(app, ["-q", "build-engine", str(onnx_copy), "--int8", "--calib", str(tmp_path / "calib" / "images")])
    assert result.exit_code == 0, result.output
    engine = tmp_path / "det.int8.engine"
    meta, info = read_sidecar(engine)
    assert (tmp_path / "det.int8.onnx").is_file() and info["source_onnx"] == "det.int8.onnx"
    assert meta.precision == info["precision"] == "int8" and info["strongly_typed"] and info["flags"] == []
    assert runner.invoke(app, ["build-engine", str(onnx_copy), "--calib", str(tmp_path)]).exit_code == 2  # --calib without --int8


def test_errors_tensorrt_would_swallow_in_callbacks_are_raised(onnx_copy: Path, tmp_path: Path) -> None:
    """TensorRT catches exceptions in Python callbacks: a Ctrl+C in the progress bar cancels the build and is raised."""

    def interrupt(phase: str, done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_engine(onnx_copy, tmp_path / "a.engine", progress=interrupt, trt=fake_trt.make("10.3.0", build_fails=True))
    assert not (tmp_path / "a.engine").exists()
    from edgecv.engine.trt_compat import progress_monitor

    calls: list = []
    monitor = progress_monitor(fake_trt.make("10.3.0"), lambda *a: calls.append(a))
    assert monitor.step_complete("Building engine", 0) and monitor.error is None and calls == [("Building engine", 1, 1)]


def test_hardware_compat_is_refused_on_jetpack(onnx_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecv.machine as machine

    monkeypatch.setattr(machine, "is_jetson", lambda root=None: True)
    with pytest.raises(ConfigError, match="not supported on JetPack"):
        build_engine(onnx_copy, onnx_copy.with_suffix(".engine"), BuildOptions(hardware_compat="ampere+"), trt=fake_trt.make("10.3.0"))
