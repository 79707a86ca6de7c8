"""Helpers for the serve tests: frames that carry their index, a feeder thread, an MJPEG reader."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any

import cv2
import numpy as np

from edgecv.results import Detections, FrameResult, StageTimings

W, H = 320, 240
BOX = (40.0, 30.0, 200.0, 180.0)  # x1 y1 x2 y2 of the one detection


def index_frame(i: int, size: tuple[int, int] = (W, H), noise: bool = False) -> np.ndarray:
    """BGR frame encoding ``i`` (0..1023) as two grey halves (left (i % 32) * 8, right (i // 32) * 8).

    ``noise`` adds a textured band at the bottom so JPEGs are large (fills socket buffers fast)
    without touching the halves' centres that :func:`frame_index` reads.
    """
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = (i % 32) * 8
    img[:, w // 2 :] = (i // 32) * 8
    if noise:
        rng = np.random.default_rng(i)
        band = h // 4
        img[h - band :] = rng.integers(0, 256, (band, w, 3), dtype=np.uint8)
    return img


def frame_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    ys = slice(h // 2 - 4, h // 2 + 4)
    lo = int(round(float(img[ys, w // 8 : w // 8 + 8, 1].mean()) / 8))
    hi = int(round(float(img[ys, 7 * w // 8 - 8 : 7 * w // 8, 1].mean()) / 8))
    return lo + 32 * hi


def detections() -> Detections:
    return Detections(np.array([BOX], np.float32), np.array([0.9], np.float32), np.array([0], np.int32), ("thing",))


def frame_result(i: int, *, age_ms: float = 3.0) -> FrameResult:
    return FrameResult(i, time.time(), detections(), StageTimings(1.0, 2.0, 10.0 + i % 5, 1.5, 0.5), age_ms)


class Feeder(threading.Thread):
    """Writes frames to a sink at ``fps`` (like the run loop's thread) and records how long each write took."""

    def __init__(self, sink: Any, fps: float = 60.0, size: tuple[int, int] = (W, H), noise: bool = False) -> None:
        super().__init__(daemon=True)
        self.sink, self.period, self.size, self.noise = sink, 1.0 / fps, size, noise
        self.stop = threading.Event()
        self.written = 0
        self.write_s: list[float] = []
        self._frames = [index_frame(i, size, noise) for i in range(32)]

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            frame = self._frames[i % 32].copy()  # a new array per frame, as sources deliver
            t0 = time.perf_counter()
            self.sink.write(frame, frame_result(i % 32))
            self.write_s.append(time.perf_counter() - t0)
            self.written += 1
            i += 1
            time.sleep(self.period)

    def __enter__(self) -> Feeder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(5)


def get(url: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class MjpegClient:
    """A raw-socket MJPEG viewer: ``next_jpeg()`` reads one part; ``close()`` hangs up."""

    def __init__(self, url: str, path: str, *, rcvbuf: int | None = None, headers: str = "", timeout: float = 10.0) -> None:
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline().decode()
        self.status = int(status.split()[1])
        self.headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.lower()] = v.strip()

    def next_jpeg(self) -> bytes:
        line = self.file.readline()
        while line.strip() == b"":
            line = self.file.readline()
            if not line:
                raise EOFError("stream ended")
        assert line.startswith(b"--"), line
        length = None
        while True:
            h = self.file.readline().strip()
            if not h:
                break
            k, _, v = h.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        assert length is not None
        data = self.file.read(length)
        assert len(data) == length
        return data

    def next_frame(self) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(self.next_jpeg(), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        return img

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def wait_for(cond: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())
