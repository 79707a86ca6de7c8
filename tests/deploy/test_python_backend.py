"""The generated Python-backend models, run offline: a stand-in for Triton's ``triton_python_backend_utils``
(the few names the backend documents: Tensor, InferenceResponse, TritonError, get_input_tensor_by_name) drives
pre -> network -> post exactly as the ensemble chains them, and the boxes must equal edgecv.load's."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tritonclient")
from google.protobuf import json_format, text_format  # noqa: E402
from tritonclient.grpc.model_config_pb2 import ModelConfig  # noqa: E402

import edgecv  # noqa: E402
from edgecv.data.synthetic import make_scene  # noqa: E402
from edgecv.deploy.triton import TritonConfig, write_repository  # noqa: E402
from edgecv.engine.onnxruntime import OnnxRuntimeEngine  # noqa: E402


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class Response:
    def __init__(self, output_tensors: list[Tensor], error: object = None) -> None:
        self.outputs, self.error = {t.name(): t.as_numpy() for t in output_tensors}, error


@pytest.fixture
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = Tensor  # type: ignore[attr-defined]
    module.InferenceResponse = Response  # type: ignore[attr-defined]
    module.TritonError = lambda msg: msg  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


def load_model(repo: Path, name: str) -> object:
    """What the Python backend does: import model.py, instantiate TritonPythonModel, initialize with the config as JSON."""
    import importlib.util

    folder = repo / name
    spec = importlib.util.spec_from_file_location(f"model_{name.replace('-', '_')}", folder / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    config = text_format.Parse((folder / "config.pbtxt").read_text(), ModelConfig())
    model = module.TritonPythonModel()
    args = {"model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
            "model_repository": str(folder), "model_version": "1", "model_name": name}  # fmt: skip
    model.initialize(args)
    return model


def ensemble(repo: Path, name: str, encoded: np.ndarray) -> dict[str, np.ndarray]:
    pre, core, post = (load_model(repo, n) for n in (f"{name}_pre", name, f"{name}_post"))
    [r1] = pre.execute([{"IMAGE": Tensor("IMAGE", encoded[None])}])
    assert r1.error is None, r1.error
    [r2] = core.execute([{k: Tensor(k, v) for k, v in r1.outputs.items() if k != "TRANSFORM"}])
    assert r2.error is None, r2.error
    [r3] = post.execute([{**{k: Tensor(k, v) for k, v in r2.outputs.items()}, "TRANSFORM": Tensor("TRANSFORM", r1.outputs["TRANSFORM"])}])
    assert r3.error is None, r3.error
    core.finalize()
    return {k: v[0] for k, v in r3.outputs.items()}  # the batch of one


@pytest.mark.parametrize("key", ["det", "det_nms", "seg"])
def test_pre_network_post_equals_local(artifacts: dict[str, Path], tmp_path: Path, pb_utils: types.ModuleType, key: str) -> None:
    write_repository([artifacts[key]], tmp_path, TritonConfig(ensemble=True, backend="python", device="cpu", conf=0.25))
    frame = make_scene(np.random.default_rng(5), 360, 500)[0]
    ok, encoded = cv2.imencode(".png", frame)
    assert ok
    got = ensemble(tmp_path, key, encoded.reshape(-1))
    local = edgecv.load(artifacts[key], conf=0.25)(frame)
    if key == "seg":
        np.testing.assert_array_equal(got["CLASS_MAP"], local.class_map)
        assert got["CLASS_MAP"].shape == frame.shape[:2]
        return
    assert len(local) > 0
    np.testing.assert_allclose(got["BOXES"], local.xyxy, atol=1e-4)
    np.testing.assert_allclose(got["SCORES"], local.scores, atol=1e-6)
    np.testing.assert_array_equal(got["CLASSES"], local.class_ids)


def test_bad_image_is_an_error_response_not_a_crash(artifacts: dict[str, Path], tmp_path: Path, pb_utils: types.ModuleType) -> None:
    write_repository([artifacts["det"]], tmp_path, TritonConfig(ensemble=True, device="cpu"))
    pre = load_model(tmp_path, "det_pre")
    good = cv2.imencode(".jpg", np.zeros((20, 30, 3), np.uint8))[1].reshape(1, -1)
    bad, ok = pre.execute([{"IMAGE": Tensor("IMAGE", np.frombuffer(b"not an image", np.uint8)[None])}, {"IMAGE": Tensor("IMAGE", good)}])
    assert "not a decodable image" in str(bad.error) and bad.outputs == {}
    assert ok.error is None and ok.outputs["images"].shape == (1, 3, 192, 256)  # dynamic model: minimal stride-32 padding and ok.outputs["TRANSFORM"].shape == (1, 7)


def test_network_step_merges_requests_into_one_batch(artifacts: dict[str, Path], tmp_path: Path, pb_utils: types.ModuleType) -> None:
    write_repository([artifacts["det"]], tmp_path, TritonConfig(backend="python", device="cpu"))
    core = load_model(tmp_path, "det")
    runs: list[tuple[int, ...]] = []
    infer = core.engine.infer
    core.engine.infer = lambda feeds: runs.append(feeds["images"].shape) or infer(feeds)  # type: ignore[method-assign]
    rng = np.random.default_rng(1)
    a, b = rng.random((1, 3, 64, 96), np.float32), rng.random((2, 3, 64, 96), np.float32)
    c = rng.random((1, 3, 96, 64), np.float32)
    bad = np.zeros((1, 3, 64, 96), np.float64)  # wrong dtype: fails alone
    requests = [{"images": Tensor("images", x)} for x in (a, b, c, bad)]
    responses = core.execute(requests)
    assert runs[:2] == [(3, 3, 64, 96), (1, 3, 96, 64)]  # a and b in one batch, c on its own
    with OnnxRuntimeEngine(artifacts["det"], providers="cpu") as ort:
        for x, r in zip((a, b, c), responses):
            assert r.error is None
            np.testing.assert_allclose(r.outputs["output0"], ort.infer({"images": x})["output0"], atol=1e-5)
    assert responses[3].error is not None and "float64" in str(responses[3].error)
    core.finalize()
