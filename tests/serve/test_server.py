"""The preview server over real HTTP with two sources fed directly: page, status, streams, token, metrics, bad clients."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from servekit import BOX, Feeder, MjpegClient, frame_index, get, wait_for

from edgecv.errors import ConfigError
from edgecv.serve import PreviewServer, ServeConfig
from edgecv.vision.draw import color_for

prometheus_parser = pytest.importorskip("prometheus_client.parser")

MODEL = SimpleNamespace(
    task="detect",
    names=("thing",),
    meta=SimpleNamespace(precision="int8", input_size=(256, 320)),
    engine=SimpleNamespace(backend="onnxruntime"),
    path=Path("fake-det.int8.onnx"),
)


@pytest.fixture
def server() -> Iterator[PreviewServer]:
    srv = PreviewServer(ServeConfig(port=0, max_fps=30, send_timeout_s=1.0))
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def fed(server: PreviewServer) -> Iterator[tuple[PreviewServer, Feeder, Feeder]]:
    """Two sources, cam0 and cam1, each written to by its own 'loop' thread at 60 FPS."""
    a = Feeder(server.sink("cam0", model=MODEL, source="rtsp://front"), fps=60)
    b = Feeder(server.sink("cam1", model=MODEL, source="rtsp://rear"), fps=60)
    with a, b:
        assert wait_for(lambda: a.written > 5 and b.written > 5)
        yield server, a, b


def _viewers(server: PreviewServer) -> int:
    return sum(ch.viewers for ch in server.hub.channels())


def test_status_lists_both_sources_with_figures(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, a, b = fed
    time.sleep(0.6)
    status, headers, body = get(server.url, "/api/status")
    assert status == 200 and headers["content-type"] == "application/json"
    st = json.loads(body)
    by_id = {s["id"]: s for s in st["sources"]}
    assert set(by_id) == {"cam0", "cam1"}
    cam0 = by_id["cam0"]
    assert cam0["source"] == "rtsp://front" and by_id["cam1"]["source"] == "rtsp://rear"
    assert cam0["model"] == {"name": "fake-det.int8.onnx", "task": "detect", "precision": "int8", "backend": "onnxruntime", "input_size": "320x256", "classes": 1}
    assert 0 < cam0["frames"] <= a.written
    assert cam0["fps"] > 5  # 60 FPS nominal; a shared CI machine may be much slower
    assert cam0["stages_ms"]["pre"]["p50"] == 2.0 and cam0["stages_ms"]["capture"]["p99"] == 1.0
    assert 10.0 <= cam0["stages_ms"]["infer"]["p50"] <= 14.0
    assert cam0["stages_ms"]["total"]["p50"] == pytest.approx(cam0["stages_ms"]["infer"]["p50"] + 5.0, abs=2.0)
    assert cam0["age_ms"]["p50"] == 3.0
    assert cam0["last_frame_s_ago"] < 2.0
    assert cam0["viewers"] == 0


def test_page_is_served_and_names_the_endpoints(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, _, _ = fed
    status, headers, body = get(server.url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "/api/status" in page and "/stream/" in page and ".mjpg" in page


def test_stream_shows_the_newest_annotated_frame_of_each_source(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, _, _ = fed
    for sid in ("cam0", "cam1"):
        client = MjpegClient(server.url, f"/stream/{sid}.mjpg")
        try:
            assert client.status == 200
            assert client.headers["content-type"].startswith("multipart/x-mixed-replace")
            img = client.next_frame()
            assert img.shape == (240, 320, 3)
            x1, y1, x2, _ = (int(v) for v in BOX)
            # the box edge has the class colour; the frame's grey (< 256 - 8) does not
            edge = img[y1 + 20 : y1 + 40, x1 - 1 : x1 + 2].reshape(-1, 3).astype(int).mean(axis=0)
            assert np.abs(edge - np.array(color_for(0))).max() < 60, edge
            assert 0 <= frame_index(img) < 32
        finally:
            client.close()


def test_snapshot_and_unknown_source(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, _, _ = fed
    status, headers, body = get(server.url, "/snapshot/cam1.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    status, _, body = get(server.url, "/stream/cam9.mjpg")
    assert status == 404 and b"cam0, cam1" in body


def test_nobody_watching_means_no_encoding(server: PreviewServer) -> None:
    with Feeder(server.sink("cam0", model=MODEL), fps=100) as feeder:
        assert wait_for(lambda: feeder.written > 50)
        ch = server.hub.get("cam0")
        assert ch is not None and ch.encoded == 0 and ch._encoder is None
        client = MjpegClient(server.url, "/stream/cam0.mjpg")
        client.next_jpeg()
        assert ch.encoded >= 1
        client.close()
        # the encoder stops once the viewer is gone
        assert wait_for(lambda: ch._encoder is None, timeout=10)
        n = ch.encoded
        time.sleep(0.5)
        assert ch.encoded == n


def test_fps_cap_and_newest_frame_only(server: PreviewServer) -> None:
    """A 200 FPS loop previewed at <= 30 FPS: the viewer sees a subset of frames, never an old one twice."""
    with Feeder(server.sink("cam0", model=MODEL), fps=200) as feeder:
        client = MjpegClient(server.url, "/stream/cam0.mjpg")
        try:
            t0 = time.monotonic()
            frames = [client.next_frame() for _ in range(10)]
            elapsed = time.monotonic() - t0
        finally:
            client.close()
        ch = server.hub.get("cam0")
        assert ch is not None
        # the cap: 10 frames take at least 9 encoder periods (1/30 s each)
        assert elapsed >= 9 / 30 * 0.95
        assert feeder.written > ch.encoded  # frames in between were never encoded
        assert len({frame_index(f) for f in frames}) >= 2


def test_stalled_client_is_dropped_and_never_slows_the_loop(server: PreviewServer) -> None:
    """A viewer that stops reading: the loop keeps writing, another viewer keeps getting frames, the staller times out."""
    with Feeder(server.sink("cam0", model=MODEL), fps=60, size=(640, 480), noise=True) as feeder:
        stalled = MjpegClient(server.url, "/stream/cam0.mjpg", rcvbuf=4096)  # connects, then never reads
        healthy = MjpegClient(server.url, "/stream/cam0.mjpg")
        try:
            assert wait_for(lambda: _viewers(server) == 2)
            written = feeder.written
            seen = [frame_index(healthy.next_frame()) for _ in range(15)]
            assert len(seen) == 15
            assert feeder.written > written + 10
            # the stalled socket's buffers fill, the send times out (send_timeout_s=1) and its thread ends
            assert wait_for(lambda: _viewers(server) == 1, timeout=30), "the stalled viewer was never dropped"
            healthy.next_frame()
        finally:
            stalled.close()
            healthy.close()
    # every write returned: the loop thread never waited on a viewer
    assert feeder.written == len(feeder.write_s)


def test_slow_reader_skips_frames_and_paces_nobody(server: PreviewServer) -> None:
    """A viewer on a slow link gets the newest JPEG whenever it is ready for one; a fast viewer is not held back."""
    with Feeder(server.sink("cam0", model=MODEL), fps=60, size=(640, 480), noise=True) as feeder:
        slow = MjpegClient(server.url, "/stream/cam0.mjpg", rcvbuf=8192)
        fast = MjpegClient(server.url, "/stream/cam0.mjpg")
        ch = server.hub.get("cam0")
        assert ch is not None
        got_slow: list[bytes] = []
        stop = threading.Event()

        def read_slowly() -> None:
            sock = slow.sock
            buf = b""
            while not stop.is_set():
                try:
                    chunk = sock.recv(8192)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\xff\xd9" in buf:  # end of a JPEG
                    jpeg, buf = buf.split(b"\xff\xd9", 1)
                    got_slow.append(jpeg)
                time.sleep(0.01)  # <= 800 kB/s: slower than the stream (~300 kB JPEGs at up to 30 per second)

        t = threading.Thread(target=read_slowly, daemon=True)
        t.start()
        try:
            encoded0 = ch.encoded
            fast_frames = [fast.next_jpeg() for _ in range(20)]
            encoded = ch.encoded - encoded0
        finally:
            stop.set()
            t.join(5)
            slow.close()
            fast.close()
        assert len(fast_frames) == 20
        assert 1 <= len(got_slow) < len(fast_frames), len(got_slow)  # the slow one got some, skipping JPEGs...
        assert encoded >= 19  # ...while the encoder kept its pace for the fast one
        assert feeder.written == len(feeder.write_s)


def test_client_that_disconnects_mid_stream(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, a, _ = fed
    client = MjpegClient(server.url, "/stream/cam0.mjpg")
    client.next_jpeg()
    client.file.read(100)  # part of the next part
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    client.close()
    assert wait_for(lambda: _viewers(server) == 0, timeout=15)
    written = a.written
    # the server still serves, and new viewers are fine
    again = MjpegClient(server.url, "/stream/cam0.mjpg")
    try:
        again.next_frame()
    finally:
        again.close()
    assert wait_for(lambda: a.written > written + 5)


def test_twenty_concurrent_viewers(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, _, _ = fed
    n = 20
    all_connected = threading.Barrier(n + 1, timeout=30)
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def viewer(k: int) -> None:
        try:
            client = MjpegClient(server.url, f"/stream/cam{k % 2}.mjpg")
            try:
                frames = [client.next_frame() for _ in range(2)]
                all_connected.wait()
                frames += [client.next_frame() for _ in range(2)]
                with lock:
                    got.append(len(frames))
            finally:
                client.close()
        except BaseException as exc:
            errors.append(exc)
            all_connected.abort()

    threads = [threading.Thread(target=viewer, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    all_connected.wait()
    assert _viewers(server) == n
    st = json.loads(get(server.url, "/api/status")[2])
    assert sum(s["viewers"] for s in st["sources"]) == n
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert got == [4] * n
    assert wait_for(lambda: _viewers(server) == 0)


def test_viewer_limit_answers_503() -> None:
    with PreviewServer(ServeConfig(port=0, max_viewers=2)) as server, Feeder(server.sink("cam0", model=MODEL)):
        a, b = MjpegClient(server.url, "/stream/cam0.mjpg"), MjpegClient(server.url, "/stream/cam0.mjpg")
        try:
            assert wait_for(lambda: _viewers(server) == 2)
            status, _, body = get(server.url, "/stream/cam0.mjpg")
            assert status == 503 and b"too many viewers" in body
        finally:
            a.close()
            b.close()


def test_token_required_when_set() -> None:
    with PreviewServer(ServeConfig(port=0, token="s3cret")) as server, Feeder(server.sink("cam0", model=MODEL)):
        for path in ("/", "/api/status", "/metrics", "/stream/cam0.mjpg", "/snapshot/cam0.jpg"):
            status, headers, body = get(server.url, path)
            assert status == 401, path
            assert "bearer" in headers["www-authenticate"].lower() and b"token" in body
            assert get(server.url, path + "?token=wrong")[0] == 401
            assert get(server.url, path, {"Authorization": "Bearer s3cre"})[0] == 401
        # the right token, three ways
        status, headers, _ = get(server.url, "/?token=s3cret")
        assert status == 200 and "edgecv_token=s3cret" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]
        assert get(server.url, "/api/status", {"Authorization": "Bearer s3cret"})[0] == 200
        assert get(server.url, "/api/status", {"Cookie": "edgecv_token=s3cret"})[0] == 200
        client = MjpegClient(server.url, "/stream/cam0.mjpg?token=s3cret")
        try:
            assert client.status == 200
            client.next_jpeg()
        finally:
            client.close()
        wrong = MjpegClient(server.url, "/stream/cam0.mjpg?token=nope")
        assert wrong.status == 401
        wrong.close()
        assert get(server.url, "/healthz")[0] == 200  # health checks need no token


def test_metrics_parse_per_source(fed: tuple[PreviewServer, Feeder, Feeder]) -> None:
    server, a, b = fed
    time.sleep(0.6)
    status, headers, body = get(server.url, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in prometheus_parser.text_string_to_metric_families(body.decode())}
    assert {"edgecv_frames", "edgecv_dropped_frames", "edgecv_bad_frames", "edgecv_reconnects", "edgecv_stage_latency_seconds",
            "edgecv_frame_age_seconds", "edgecv_fps", "edgecv_last_frame_age_seconds", "edgecv_model_info"} <= set(families)
    assert families["edgecv_frames"].type == "counter"
    assert families["edgecv_stage_latency_seconds"].type == "histogram"
    frames = {s.labels["source"]: s.value for s in families["edgecv_frames"].samples if s.name == "edgecv_frames_total"}
    assert set(frames) == {"cam0", "cam1"} and all(v > 0 for v in frames.values())
    infer_count = {s.labels["source"]: s.value for s in families["edgecv_stage_latency_seconds"].samples
                   if s.name.endswith("_count") and s.labels["stage"] == "infer"}
    assert set(infer_count) == {"cam0", "cam1"}
    assert 0 < infer_count["cam0"] <= frames["cam0"]
    # infer is 10..14 ms: everything sits in the 0.015 s bucket, nothing in 0.01 (exclusive of 10.0 exactly)
    buckets = {s.labels["le"]: s.value for s in families["edgecv_stage_latency_seconds"].samples
               if s.name.endswith("_bucket") and s.labels == {**s.labels, "source": "cam1", "stage": "infer"}}
    assert buckets["0.015"] == buckets["+Inf"] and buckets["0.005"] == 0
    info = [s for s in families["edgecv_model_info"].samples if s.labels["source"] == "cam0"]
    assert len(info) == 1 and info[0].value == 1.0
    want = {"source": "cam0", "task": "detect", "precision": "int8", "backend": "onnxruntime", "input_size": "320x256", "model": "fake-det.int8.onnx"}
    assert info[0].labels == want


def test_metrics_only_serves_no_video() -> None:
    with PreviewServer(ServeConfig(port=0, video=False)) as server, Feeder(server.sink("cam0", model=MODEL)) as feeder:
        assert wait_for(lambda: feeder.written > 3)
        assert get(server.url, "/stream/cam0.mjpg")[0] == 404
        assert get(server.url, "/snapshot/cam0.jpg")[0] == 404
        status, _, body = get(server.url, "/")
        assert status == 200 and b"/metrics" in body and b"<img" not in body
        assert get(server.url, "/metrics")[0] == 200
        assert get(server.url, "/api/status")[0] == 200
        ch = server.hub.get("cam0")
        assert ch is not None and ch.annotate is None  # nothing is ever drawn for a metrics-only run


def test_other_address_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgecv.serve"):
        with PreviewServer(ServeConfig(host="0.0.0.0", port=0)):
            pass
    assert "reachable from the network" in caplog.text and "WITHOUT a token" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgecv.serve"):
        with PreviewServer(ServeConfig(port=0)):
            pass
    assert "reachable" not in caplog.text


def test_port_in_use_is_a_config_error(server: PreviewServer) -> None:
    with pytest.raises(ConfigError, match="cannot serve on 127.0.0.1") as err:
        PreviewServer(ServeConfig(port=server.port))
    assert err.value.hint and "another port" in err.value.hint


def test_preview_works_without_prometheus_client(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with caplog.at_level(logging.WARNING, logger="edgecv.serve"):
        server = PreviewServer(ServeConfig(port=0))
    try:
        assert "/metrics is off" in caplog.text and "edgecv[serve]" in caplog.text
        with Feeder(server.sink("cam0", model=MODEL)):
            status, _, body = get(server.url, "/metrics")
            assert status == 501 and b"edgecv[serve]" in body
            assert get(server.url, "/")[0] == 200
            client = MjpegClient(server.url, "/stream/cam0.mjpg")
            try:
                client.next_frame()
            finally:
                client.close()
    finally:
        server.close()


def test_two_run_loops_into_one_server(server: PreviewServer) -> None:
    """Two real run loops (shipped detector, demo video) publish to one server, each under its own id."""
    import edgecv
    from edgecv import assets
    from edgecv.stream.pipeline import run_pipeline
    from edgecv.stream.sources import open_source

    model = edgecv.load(assets.shipped(assets.DEFAULT_MODELS["detect"]))
    summaries: dict[str, object] = {}

    def loop(sid: str) -> None:
        src = open_source(str(assets.demo_video()))
        sink = server.sink(sid, model=model, source=f"demo ({sid})", live=False)
        summaries[sid] = run_pipeline(model, src, [sink], max_frames=20, status=server.hub.status_callback(sid), status_interval_s=0.05)

    try:
        threads = [threading.Thread(target=loop, args=(sid,)) for sid in ("front", "rear")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        st = {s["id"]: s for s in json.loads(get(server.url, "/api/status")[2])["sources"]}
        assert set(st) == {"front", "rear"}
        for sid in ("front", "rear"):
            assert st[sid]["frames"] == 20 and st[sid]["stages_ms"]["infer"]["count"] == 20
            assert st[sid]["model"]["name"] == "shapes-det.onnx" and st[sid]["model"]["input_size"] == "256x256"
            assert st[sid]["stop_reason"] == "max_frames"
            assert st[sid]["age_ms"]["count"] == 0  # files: no frame age
        status, _, body = get(server.url, "/snapshot/rear.jpg")
        assert status == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    finally:
        model.close()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = PreviewServer(ServeConfig(host="::1", port=0))
    except ConfigError as exc:
        pytest.skip(f"IPv6 loopback not usable here: {exc}")
    try:
        assert server.url.startswith("http://[::1]:")
        with socket.create_connection(("::1", server.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.close()
