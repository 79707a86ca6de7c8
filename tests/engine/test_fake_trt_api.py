"""The TensorRT fakes offer only names TensorRT's real Python API has, per version (10.3, 10.9, 11.1).

``tests/trt_api/tensorrt-X.Y.json`` lists the real names, extracted from NVIDIA/TensorRT's pybind11
sources at tag vX.Y by ``scripts/trt_api_names.py``. A fake that offered a name the real class
lacks would let edgecv call it untested; since the fakes use ``__slots__`` and offer nothing
else, a call edgecv makes that one major does not have raises AttributeError in the tests.
"""

from __future__ import annotations

import inspect
from enum import EnumMeta

import fake_trt
import pytest
from cuda_sim import CudaSim

VERSIONS = ["10.3.0", "10.9.0", "11.1.0"]
SEVERITY = {"VERBOSE", "INFO", "WARNING", "ERROR", "INTERNAL_ERROR"}  # ILogger.Severity, exported onto Logger


def _public(cls: type) -> set[str]:
    names = set()
    for klass in inspect.getmro(cls)[:-1]:
        names |= {n for n in vars(klass) if not n.startswith("_")}
        names |= {n for n in getattr(klass, "__slots__", ()) if not n.startswith("_")}
    return names


def _fakes(version: str) -> tuple[object, list[type]]:
    trt = fake_trt.with_runtime(fake_trt.make(version), CudaSim())
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(b"PLAN")
    builder = trt.Builder(trt.Logger())
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt.Logger())
    objects = [trt.Logger, trt.Runtime, type(engine), type(engine.create_execution_context()), trt.Builder, type(network),
               type(builder.create_builder_config()), type(builder.create_optimization_profile()), trt.OnnxParser, trt.IProgressMonitor,
               fake_trt.ParserError, fake_trt.Tensor, fake_trt.TimingCache]  # fmt: skip
    if hasattr(trt, "IInt8EntropyCalibrator2"):
        objects.append(trt.IInt8EntropyCalibrator2)
    assert parser is not None
    return trt, objects


@pytest.mark.parametrize("version", VERSIONS)
def test_every_fake_name_exists_in_the_real_api(version: str) -> None:
    real = fake_trt.api(version)
    trt, classes = _fakes(version)
    for cls in classes:
        have = set(real["classes"][cls._real]) | (SEVERITY if cls._real == "Logger" else set())
        extra = _public(cls) - have
        assert not extra, f"TensorRT {version} {cls._real} has no {sorted(extra)}"
    module_names = {n for n in vars(trt) if not n.startswith("_")} - {"__version__"}
    assert not module_names - set(real["classes"]) - set(real["functions"]), f"not in tensorrt {version}"
    for name, value in vars(trt).items():
        if isinstance(value, EnumMeta):
            assert [m.name for m in value] == real["classes"][name]


def test_calls_that_one_major_lacks_fail() -> None:
    trt10, trt11 = fake_trt.make("10.3.0"), fake_trt.make("11.1.0")
    assert trt10.BuilderFlag.FP16 is not None and trt10.NetworkDefinitionCreationFlag.EXPLICIT_BATCH is not None
    with pytest.raises(AttributeError):
        trt11.BuilderFlag.FP16  # removed in TensorRT 11 (strongly typed networks)  # noqa: B018
    with pytest.raises(AttributeError):
        trt11.NetworkDefinitionCreationFlag.EXPLICIT_BATCH  # noqa: B018
    assert not hasattr(trt11, "IInt8EntropyCalibrator2")
    config11 = trt11.Builder(trt11.Logger()).create_builder_config()
    with pytest.raises(AttributeError):
        config11.int8_calibrator = object()
    with pytest.raises(AttributeError):
        config11.set_calibration_profile(None)
    with pytest.raises(AttributeError):
        trt10.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY  # from TensorRT 10.9  # noqa: B018
    assert fake_trt.make("10.9.0").HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY is not None
    assert trt11.BuilderFlag.DIRECT_IO is not None  # still in 11.1's bindings (an older fake removed it)


def test_the_lists_come_from_the_bindings() -> None:
    """Spot checks against NVIDIA's Python API reference, so a broken extraction cannot pass silently."""
    for version in VERSIONS:
        c = fake_trt.api(version)["classes"]
        assert {"set_tensor_address", "execute_async_v3", "set_input_shape", "get_tensor_shape"} <= set(c["IExecutionContext"])
        assert {"deserialize_cuda_engine", "num_DLA_cores", "engine_host_code_allowed"} <= set(c["Runtime"])
        assert {"num_io_tensors", "get_tensor_name", "get_tensor_mode", "create_execution_context"} <= set(c["ICudaEngine"])
        assert "execute_async_v2" not in c["IExecutionContext"]  # removed in TensorRT 10
    assert "int8_calibrator" in fake_trt.api("10.3.0")["classes"]["IBuilderConfig"]
    assert "int8_calibrator" not in fake_trt.api("11.1.0")["classes"]["IBuilderConfig"]


def test_every_tensorrt_name_edgecv_uses_exists_where_it_is_used() -> None:
    """``trt.X`` and ``trt.X.Y`` in edgecv's sources: in both majors, or (one major only) behind a version gate."""
    import ast
    from pathlib import Path

    import edgecv

    majors = {m: fake_trt.api(v) for m, v in ((10, "10.9.0"), (11, "11.1.0"))}

    def known(api: dict, name: str, member: str | None) -> bool:
        if member is None:
            return name in api["classes"] or name in api["functions"] or name == "__version__"
        values = set(api["classes"].get(name, ())) | (SEVERITY if name == "Logger" else set())
        return member in values or member.startswith("__")

    gated = {("IInt8EntropyCalibrator2", None)}  # TensorRT 10 only: make_entropy_calibrator checks the major first
    used = set()
    for path in (Path(edgecv.__file__).parent / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                used.add((node.attr, None))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                inner = node.value
                if isinstance(inner.value, ast.Name) and inner.value.id == "trt":
                    used.add((inner.attr, node.attr))
    assert ("execute_async_v3", None) not in used and len(used) > 8  # the scan found the module-level names
    for name, member in sorted(used, key=str):
        everywhere = all(known(api, name, member) for api in majors.values())
        assert everywhere or (name, member) in gated, f"tensorrt.{name}{'.' + member if member else ''} is missing in a major edgecv supports"
        assert any(known(api, name, member) for api in majors.values()), f"tensorrt.{name} does not exist in any major"
