"""Against a real Triton Inference Server (PyTriton's tritonserver 2.51, CPU, Python backend) on 127.0.0.1.

The repository is what `edgecv deploy triton --ensemble --backend python --device cpu` writes (this server
has no ONNX Runtime or TensorRT backend, so the network runs in edgecv's Python-backend model on ONNX
Runtime). Checked: the ensemble (encoded PNG in, boxes out) equals edgecv.load locally; TritonEngine over
HTTP and gRPC returns the network's outputs exactly for a batch of 3; edgecv run / eval --triton work;
errors (unknown model, dead server) are one line with a fix. Skipped when .venv-triton (CI makes it) is absent.
"""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tritonclient")
from triton_server import TritonServer, site_packages  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import edgecv  # noqa: E402
from edgecv.cli import app  # noqa: E402
from edgecv.data.synthetic import make_scene  # noqa: E402
from edgecv.deploy.triton import TritonConfig, write_repository  # noqa: E402
from edgecv.engine.triton import TritonEngine  # noqa: E402
from edgecv.errors import EngineError  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(site_packages() is None, reason="no tritonserver: make .venv-triton with scripts/setup_triton_server.sh"),
]


@pytest.fixture(scope="module")
def server(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    repo = tmp_path_factory.mktemp("repo")
    write_repository([artifacts["det"], artifacts["seg"]], repo, TritonConfig(ensemble=True, backend="python", device="cpu"))
    with TritonServer(repo, tmp_path_factory.mktemp("server")) as running:
        yield running


def test_ensemble_round_trip_matches_local(server: TritonServer, artifacts: dict[str, Path]) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"), network_timeout=30)
    local = edgecv.load(artifacts["det"])
    seen = 0
    for seed in range(3):
        frame = make_scene(np.random.default_rng(seed), 480, 640)[0]
        encoded = cv2.imencode(".png", frame)[1].reshape(1, -1)
        image = httpclient.InferInput("IMAGE", list(encoded.shape), "UINT8")
        image.set_data_from_numpy(encoded)
        result = client.infer("det_ensemble", [image])
        want = local(frame)
        seen += len(want)
        np.testing.assert_allclose(result.as_numpy("BOXES")[0], want.xyxy, atol=1e-4)
        np.testing.assert_allclose(result.as_numpy("SCORES")[0], want.scores, atol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("CLASSES")[0], want.class_ids)
    assert seen > 0
    frame = make_scene(np.random.default_rng(9), 300, 400)[0]
    encoded = cv2.imencode(".jpg", frame)[1].reshape(1, -1)
    image = httpclient.InferInput("IMAGE", list(encoded.shape), "UINT8")
    image.set_data_from_numpy(encoded)
    class_map = client.infer("seg_ensemble", [image]).as_numpy("CLASS_MAP")[0]
    np.testing.assert_array_equal(class_map, edgecv.load(artifacts["seg"])(cv2.imdecode(encoded[0], cv2.IMREAD_COLOR)).class_map)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_engine_protocol_against_the_server(server: TritonServer, artifacts: dict[str, Path], protocol: str) -> None:
    url = server.http_url if protocol == "http" else server.grpc_url
    local = edgecv.load(artifacts["det"])
    with TritonEngine("det", url=url) as engine:
        assert engine.meta == local.meta and engine.max_batch == 16 and engine.meta_source.startswith("edgecv metadata")
        frames = [make_scene(np.random.default_rng(s), 256, 256)[0] for s in range(3)]
        batch = np.concatenate([local.preprocess(f)[0]["images"] for f in frames])
        np.testing.assert_allclose(engine.infer({"images": batch})["output0"], local.engine.infer({"images": batch})["output0"], atol=1e-5)
        with pytest.raises(EngineError, match="max_batch_size 16"):
            engine.infer({"images": np.zeros((17, 3, 32, 32), np.float32)})
    remote = edgecv.load(artifacts["det"], triton=url)  # a deployed file's stem names the model
    frame = make_scene(np.random.default_rng(4), 480, 640)[0]
    np.testing.assert_allclose(remote(frame).xyxy, local(frame).xyxy, atol=1e-4)
    remote.close()


def test_threads_share_one_model(server: TritonServer, artifacts: dict[str, Path]) -> None:
    import threading

    local = edgecv.load(artifacts["det"])
    remote = edgecv.load("det", triton=server.http_url)  # HTTP: a connection per thread
    frames = [make_scene(np.random.default_rng(s), 256, 256)[0] for s in range(3)]
    wrong: list[int] = []

    def work(i: int) -> None:
        for _ in range(3):
            if not np.allclose(remote(frames[i]).xyxy, local(frames[i]).xyxy, atol=1e-4):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not wrong and not any(t.is_alive() for t in threads)
    remote.close()


def test_run_and_eval_against_the_server(server: TritonServer, demo_video: Path, shapes_val: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["run", "det", "--triton", server.grpc_url, "--source", str(demo_video), "--max-frames", "5", "--jsonl", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 5
    result = runner.invoke(app, ["eval", "det", "--triton", server.http_url, "--data", str(shapes_val), "--max-images", "4"])
    assert result.exit_code == 0, result.output
    assert "map" in result.output.lower()


def test_errors_are_one_line_with_a_fix(server: TritonServer) -> None:
    with pytest.raises(EngineError, match="no ready model 'nope'") as info:
        TritonEngine("nope", url=server.http_url)
    assert "edgecv deploy triton" in str(info.value.hint)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    for url in (f"http://127.0.0.1:{dead}", f"grpc://127.0.0.1:{dead}"):
        with pytest.raises(EngineError, match="cannot reach Triton"):
            TritonEngine("det", url=url, timeout_s=3)
    result = CliRunner().invoke(app, ["run", "det", "--triton", f"http://127.0.0.1:{dead}", "--max-frames", "1"])
    assert result.exit_code == 1 and "cannot reach Triton" in result.output
