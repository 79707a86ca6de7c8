"""A live network stream on loopback: newest-frame hand-off, reconnect, give up.

An ffmpeg binary (from imageio-ffmpeg) serves a generated clip in real time as
MJPEG in Matroska over TCP on 127.0.0.1 (``?listen=1``: it accepts one client
and exits when killed). Matroska/MJPEG is what OpenCV's FFmpeg backend opened
fastest and most reliably here (MJPEG in MPEG-TS is a private stream it cannot
decode); every frame is intra-coded, so a reconnect decodes at once. Without
``-flush_packets 1 -cluster_time_limit 0`` the muxer sends ~0.6 s clusters in
bursts, which is not what a camera does.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from streamkit import frame_index, write_video

from edgecv.errors import SourceError
from edgecv.stream import Source, open_source

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamServer:
    """``ffmpeg -re -stream_loop -1 -i clip -c:v mjpeg -f matroska tcp://127.0.0.1:PORT?listen=1``."""

    def __init__(self, video: Path, port: int) -> None:
        self.cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "quiet", "-nostdin",
            "-re", "-stream_loop", "-1", "-i", str(video),
            "-c:v", "mjpeg", "-q:v", "3", "-flush_packets", "1", "-cluster_time_limit", "0",
            "-f", "matroska", f"tcp://127.0.0.1:{port}?listen=1",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


def _open_when_listening(url: str, deadline_s: float, **kwargs: object) -> Source:
    """Open the stream, retrying while ffmpeg starts listening (a refused connection fails at once)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return open_source(url, **kwargs)  # type: ignore[arg-type]
        except SourceError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_live_stream_latest_frame_reconnect_and_give_up(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", n=90, fps=30.0)  # a 3 s loop
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    server = StreamServer(video, port)
    server.start()
    src: Source | None = None
    try:
        src = _open_when_listening(
            url, 10.0, open_timeout_s=3.0, read_timeout_s=1.0, max_reconnect_s=3.0, backoff_s=(0.1, 0.4)
        )
        assert src.is_live and src.kind == "stream" and src.size == (64, 48)

        # 1. slow consumer (10 fps on a 30 fps stream): newest frames, drops counted, bounded age
        contents: list[int] = []
        indices: list[int] = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            frame = src.read(timeout=1.0)
            assert frame is not None, "the stream stalled"
            indices.append(frame.index)
            contents.append(frame_index(frame.image))
            time.sleep(0.1)
        assert indices == sorted(set(indices)) and len(indices) >= 8
        assert src.stats.frames_dropped >= 10, src.stats
        steps = [(b - a) % 90 for a, b in zip(contents, contents[1:], strict=False)]
        assert sorted(steps)[len(steps) // 2] >= 2, contents  # typically ~3 frames apart: skipping, not queueing
        assert src.stats.age.max < 300.0 and src.stats.age.percentile(50) < 60.0, src.stats.age

        # 2. the server dies and comes back: the source reconnects and frames flow again
        server.kill()
        killed = time.monotonic()
        time.sleep(0.5)
        server.start()
        got_after = 0
        end = time.monotonic() + 8.0
        while time.monotonic() < end and got_after < 5:
            frame = src.read(timeout=0.5)
            if frame is not None and src.stats.reconnects >= 1 and frame.timestamp > killed + 0.5:
                got_after += 1
        assert src.stats.reconnects >= 1 and got_after == 5, src.stats

        # 3. the server dies for good: SourceError after max_reconnect_s, never a hang
        server.kill()
        killed = time.monotonic()
        with pytest.raises(SourceError, match="did not come back within 3 s") as info:
            while time.monotonic() - killed < 10.0:
                src.read(timeout=0.5)
        waited = time.monotonic() - killed
        assert 2.5 < waited < 8.0, waited
        assert "--reconnect-timeout" in (info.value.hint or "")  # names the real CLI option
    finally:
        server.kill()
        if src is not None:
            src.close()
    assert src._thread is not None and not src._thread.is_alive()


def test_video_file_over_http_ends_like_a_file(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    write_video(tmp_path / "clip.avi", n=20)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with open_source(f"http://127.0.0.1:{server.server_port}/clip.avi", open_timeout_s=3.0) as src:
            assert src.kind == "file" and not src.is_live
            assert [frame_index(f.image) for f in src] == list(range(20))
        assert src.stats.reconnects == 0
    finally:
        server.shutdown()
        server.server_close()


def test_two_live_streams_one_dies_the_other_goes_on(tmp_path: Path) -> None:
    """Two cameras on loopback in one batched stream: one server is killed for good; the other keeps
    delivering (at its own rate, never waiting for the dead one) and the dead one is dropped."""
    from streamkit import FakeModel

    import edgecv

    video = write_video(tmp_path / "clip.avi", n=90, fps=30.0)
    ports = [_free_port(), _free_port()]
    servers = [StreamServer(video, port) for port in ports]
    for server in servers:
        server.start()
    opts = {"open_timeout_s": 3.0, "read_timeout_s": 1.0, "max_reconnect_s": 1.5, "backoff_s": (0.1, 0.4)}
    srcs = [_open_when_listening(f"tcp://127.0.0.1:{port}", 10.0, **opts) for port in ports]
    times: dict[int, list[float]] = {0: [], 1: []}
    killed: float | None = None
    try:
        with edgecv.stream(FakeModel(), srcs, batch_timeout_ms=20) as stream:
            end = time.monotonic() + 20.0
            for r in stream:
                now = time.monotonic()
                times[r.source_index].append(now)
                if killed is None and len(times[1]) >= 15:
                    servers[1].kill()
                    killed = now
                if killed is not None and stream.errors and len([t for t in times[0] if t > killed + 2.0]) >= 15:
                    break
                assert now < end, "the live camera stalled behind the dead one"
    finally:
        for server in servers:
            server.kill()
    assert killed is not None and list(stream.errors) == [1] and isinstance(stream.errors[1], SourceError)
    alive_after = [t for t in times[0] if t > killed]
    # the live camera kept its pace (~30 fps) while the other reconnected and gave up: no gap over 0.5 s
    gaps = np.diff([killed, *alive_after])
    assert len(alive_after) >= 40 and gaps.max() < 0.5, gaps.max()
    s0, s1 = stream.summaries
    assert s1.stop_reason == "error" and s0.frames == len(times[0])
    assert all(not s._thread.is_alive() for s in srcs if s._thread is not None)
