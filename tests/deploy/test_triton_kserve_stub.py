"""TritonEngine (HTTP) against a LOCAL STUB of Triton's HTTP/REST protocol on 127.0.0.1 - not a real server.

The stub speaks the documented KServe v2 protocol with Triton's binary tensor data extension
(github.com/triton-inference-server/server docs/protocol/extension_binary_data.md): the request and
response bodies are a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw
tensors whose ``parameters.binary_data_size`` is set. It answers /v2/models/{m}, /v2/models/{m}/config
and /v2/models/{m}/infer by running the model on ONNX Runtime. It keeps the client's wire path in the
fast test run; the real server (PyTriton's tritonserver) is tests/deploy/test_triton_server.py (slow).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tritonclient")

import edgecv  # noqa: E402
from edgecv.data.synthetic import make_scene  # noqa: E402
from edgecv.deploy.spec import read_artifact  # noqa: E402
from edgecv.deploy.triton import TritonConfig, core_config  # noqa: E402
from edgecv.engine.onnxruntime import OnnxRuntimeEngine  # noqa: E402
from edgecv.engine.triton import DTYPES, TO_TRITON, TritonEngine  # noqa: E402
from edgecv.errors import EngineError  # noqa: E402


def _config_json(path: Path, name: str) -> dict:
    """The config as Triton's GET /v2/models/{m}/config returns it (ModelConfig as JSON)."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc.model_config_pb2 import ModelConfig

    from edgecv.deploy.pbtxt import dumps

    config = text_format.Parse(dumps(core_config(read_artifact(path), name, TritonConfig())), ModelConfig())
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def make_handler(models: dict[str, tuple[OnnxRuntimeEngine, dict]], requests: list[dict]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, header_len: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if header_len is None else "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if header_len is not None:
                self.send_header("Inference-Header-Content-Length", str(header_len))
            self.end_headers()
            self.wfile.write(body)

        def _model(self) -> tuple[str, tuple[OnnxRuntimeEngine, dict] | None, list[str]]:
            parts = self.path.split("?")[0].strip("/").split("/")  # v2 models NAME [versions V] [config|infer]
            name = parts[2] if len(parts) > 2 else ""
            return name, models.get(name), parts

        def _unknown(self, name: str) -> None:
            self._reply(400, json.dumps({"error": f"Request for unknown model: '{name}' is not found"}).encode())

        def do_GET(self) -> None:  # noqa: N802
            name, model, parts = self._model()
            if model is None:
                return self._unknown(name)
            engine, config = model
            if parts[-1] == "config":
                return self._reply(200, json.dumps(config).encode())
            batched = config.get("max_batch_size", 0) > 0
            def tensors(specs: list) -> list[dict]:
                return [{"name": s.name, "datatype": TO_TRITON[np.dtype(s.dtype).name], "shape": ([-1] if batched else []) + list(s.shape[1:] if batched else s.shape)} for s in specs]
            self._reply(200, json.dumps({"name": name, "versions": ["1"], "platform": config.get("platform"), "inputs": tensors(engine.inputs), "outputs": tensors(engine.outputs)}).encode())

        def do_POST(self) -> None:  # noqa: N802
            name, model, _ = self._model()
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if model is None:
                return self._unknown(name)
            engine, _ = model
            header_len = int(self.headers.get("Inference-Header-Content-Length") or len(body))
            header = json.loads(body[:header_len])
            requests.append(header)
            offset, feeds = header_len, {}
            for item in header["inputs"]:
                dtype = np.dtype(DTYPES[item["datatype"]])
                size = item.get("parameters", {}).get("binary_data_size")
                if size is None:  # JSON data (the non-binary form)
                    feeds[item["name"]] = np.asarray(item["data"], dtype).reshape(item["shape"])
                    continue
                feeds[item["name"]] = np.frombuffer(body[offset : offset + size], dtype).reshape(item["shape"])
                offset += size
            try:
                if name == "broken":
                    raise RuntimeError("onnx runtime error 6: Non-zero status code returned while running Conv node")
                outputs = engine.infer(feeds)
            except Exception as exc:  # the server's error reply
                return self._reply(400, json.dumps({"error": str(exc).splitlines()[0]}).encode())
            wanted = [o["name"] for o in header.get("outputs", [])] or list(outputs)
            meta, blobs = [], []
            for out_name in wanted:
                array = np.ascontiguousarray(outputs[out_name])
                meta.append({"name": out_name, "datatype": TO_TRITON[array.dtype.name], "shape": list(array.shape), "parameters": {"binary_data_size": array.nbytes}})
                blobs.append(array.tobytes())
            head = json.dumps({"model_name": name, "model_version": "1", "outputs": meta}).encode()
            self._reply(200, head + b"".join(blobs), header_len=len(head))

    return Handler


@pytest.fixture(scope="module")
def stub(artifacts: dict[str, Path]):  # type: ignore[no-untyped-def]
    requests: list[dict] = []
    models = {key: (OnnxRuntimeEngine(artifacts[key], providers="cpu"), _config_json(artifacts[key], key)) for key in ("det", "det_nms", "seg")}
    models["broken"] = (models["det"][0], {**models["det"][1], "name": "broken"})  # fails every inference
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(models, requests))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    for engine, _ in models.values():
        engine.close()


@pytest.mark.parametrize("key", ["det", "det_nms", "seg"])
def test_results_equal_local(stub: tuple[str, list], artifacts: dict[str, Path], key: str) -> None:
    url, requests = stub
    local = edgecv.load(artifacts[key])
    remote = edgecv.load(key, triton=url)
    assert remote.meta == local.meta and remote.engine.backend == "triton"
    assert [(s.name, s.dtype) for s in remote.engine.outputs] == [(s.name, s.dtype) for s in local.engine.outputs]
    for seed in range(2):
        frame = make_scene(np.random.default_rng(seed), 300, 420)[0]
        got, want = remote(frame), local(frame)
        if key == "seg":
            np.testing.assert_array_equal(got.class_map, want.class_map)
        else:
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-5)
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
    # the request used the binary extension for the input and asked for every output in binary
    last = requests[-1]
    assert last["inputs"][0]["parameters"]["binary_data_size"] > 0
    assert {o["name"] for o in last["outputs"]} == {s.name for s in local.engine.outputs}
    assert all(o["parameters"]["binary_data"] for o in last["outputs"])
    remote.close()


def test_server_errors_are_engine_errors(stub: tuple[str, list]) -> None:
    url, _ = stub
    with pytest.raises(EngineError, match="no ready model 'nope'"):
        TritonEngine("nope", url=url)
    with TritonEngine("det", url=url) as engine:
        with pytest.raises(EngineError, match="max_batch_size 16"):
            engine.infer({"images": np.zeros((17, 3, 32, 32), np.float32)})
        with pytest.raises(EngineError, match="expected inputs"):
            engine.infer({"x": np.zeros((1, 3, 32, 32), np.float32)})
    with TritonEngine("broken", url=url) as engine, pytest.raises(EngineError, match="inference failed for broken: onnx runtime error 6"):
        engine.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
