"""Sources: files, images, realtime pacing, error messages, the hand-off."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamkit import frame_index, index_frame

from edgecv.errors import ConfigError, SourceError
from edgecv.stream._handoff import Handoff
from edgecv.stream.sources import (
    csi_pipeline,
    gstreamer_pipeline,
    has_gstreamer,
    is_gstreamer,
    is_remote_file,
    open_source,
    redact,
)


def test_file_source_yields_every_frame_in_order(video: Path) -> None:
    with open_source(video) as src:
        assert not src.is_live and src.kind == "file"
        assert src.fps == pytest.approx(30.0) and src.size == (64, 48)
        frames = list(src)
    assert [f.index for f in frames] == list(range(60))
    assert [frame_index(f.image) for f in frames] == list(range(60))
    assert all(f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) for f in frames)
    assert all(f.capture_ms >= 0 and f.path is None for f in frames)
    assert src.finished
    assert src.stats.frames_read == src.stats.frames_delivered == 60
    assert src.stats.frames_dropped == src.stats.bad_frames == 0
    # consumers draw in place: every frame must own its pixels
    assert not np.shares_memory(frames[0].image, frames[1].image)


def test_file_source_close_is_idempotent_and_unblocks_reader(video: Path) -> None:
    src = open_source(video, queue_size=2)
    time.sleep(0.05)  # the reader is now blocked on the full queue
    t0 = time.monotonic()
    src.close()
    src.close()
    assert time.monotonic() - t0 < 1.0
    assert src._thread is not None and not src._thread.is_alive()
    assert src.stats.frames_read <= 3  # bounded read-ahead
    assert src.read(timeout=0.01) is None and src.finished


def test_loop_restarts_file(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("short.avi", n=5)
    with open_source(path, loop=True) as src:
        frames = [f for _, f in zip(range(12), src, strict=False)]
    assert [f.index for f in frames] == list(range(12))
    assert [frame_index(f.image) for f in frames] == [i % 5 for i in range(12)]


def test_image_folder_counts_corrupt_image_and_yields_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(folder / f"img{i}.png"), index_frame(i))
    (folder / "img3.jpg").write_bytes(b"not a jpeg at all")
    (folder / "notes.txt").write_text("ignored")
    with open_source(folder) as src:
        frames = list(src)
    assert src.stats.bad_frames == 1
    # natural order: img1, img2, img3 (bad, skipped), img10
    assert [Path(f.path).name for f in frames] == ["img1.png", "img2.png", "img10.png"]  # type: ignore[arg-type]
    assert [f.index for f in frames] == [0, 1, 3]
    assert [frame_index(f.image) for f in frames] == [1, 2, 10]


def test_glob_and_single_image(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), index_frame(i))
    cv2.imwrite(str(tmp_path / "b.png"), index_frame(7))
    with open_source(str(tmp_path / "a*.png")) as src:
        assert [frame_index(f.image) for f in src] == [0, 1, 2]
    with open_source(tmp_path / "b.png") as src:
        frames = list(src)
    assert len(frames) == 1 and frame_index(frames[0].image) == 7 and src.fps is None


def test_missing_path_is_source_error_with_hint(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found") as info:
        open_source(tmp_path / "nope.mp4")
    assert info.value.hint and "path" in info.value.hint
    with pytest.raises(SourceError, match="no images match"):
        open_source(str(tmp_path / "*.png"))


def test_bad_video_and_empty_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(SourceError, match="bad.mp4") as info:
        open_source(bad)
    assert "ffprobe" in (info.value.hint or "")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images in folder"):
        open_source(empty)


@pytest.mark.parametrize("spec", [7, "7", "/dev/video7"])
def test_missing_camera_fails_fast(spec: object) -> None:
    if Path("/dev/video7").exists():
        pytest.skip("this machine has a /dev/video7")
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="camera 7 not found") as info:
        open_source(spec)  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 2.0
    assert "/dev/video" in (info.value.hint or "") and "--source" in (info.value.hint or "")


def test_unreachable_url_fails_fast_and_hides_credentials() -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source(f"tcp://user:secret@127.0.0.1:{port}", open_timeout_s=1.0)
    assert time.monotonic() - t0 < 3.0
    assert "secret" not in str(info.value) and "***@127.0.0.1" in str(info.value)


def test_invalid_options() -> None:
    with pytest.raises(ConfigError):
        open_source("x.mp4", open_timeout_s=0)
    with pytest.raises(ConfigError):
        open_source("x.mp4", backoff_s=(2.0, 1.0))
    with pytest.raises(ConfigError):
        open_source(True)  # type: ignore[arg-type]


def test_realtime_file_keeps_newest_frame_with_slow_consumer(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("fast.avi", n=60, fps=60.0)  # 1 s of video
    got: list[tuple[int, int]] = []
    with open_source(path, realtime=True) as src:
        assert src.is_live
        t0 = time.monotonic()
        for frame in src:
            got.append((frame.index, frame_index(frame.image)))
            time.sleep(0.05)  # 20 fps consumer on a 60 fps source
        elapsed = time.monotonic() - t0
    stats = src.stats
    indices = [i for i, _ in got]
    assert all(i == decoded for i, decoded in got)  # frames not mixed up
    assert indices == sorted(set(indices)) and len(indices) < 60  # increasing, with skips
    assert stats.frames_dropped > 20
    assert stats.frames_delivered + stats.frames_dropped == stats.frames_read == 60
    assert 0.8 < elapsed < 3.0  # paced at ~60 fps, not decoded as fast as possible
    # latency never grows: a handed frame is at most ~one consumer step old
    assert stats.age.max < 250.0, stats.age
    assert stats.age.percentile(50) < 60.0, stats.age


def test_gstreamer_helpers() -> None:
    csi = csi_pipeline(sensor_id=1, width=640, height=480, fps=60, flip=2)
    assert csi.startswith("nvarguscamerasrc sensor-id=1 ") and "framerate=60/1" in csi and "flip-method=2" in csi
    assert csi.rstrip().split("!")[-1].strip().startswith("appsink")
    assert is_gstreamer(csi) and is_gstreamer("videotestsrc") and not is_gstreamer("video.mp4")
    assert gstreamer_pipeline("videotestsrc ! videoconvert !").endswith("sync=false")
    assert gstreamer_pipeline("videotestsrc ! appsink name=x") == "videotestsrc ! appsink name=x"
    assert redact("rtsp://admin:pw@cam/1") == "rtsp://***@cam/1" and redact("rtsp://cam/1") == "rtsp://cam/1"
    assert is_remote_file("https://host/a/clip.MP4?x=1") and not is_remote_file("http://cam/video.mjpg")
    assert not is_remote_file("rtsp://cam/clip.mp4")


def test_gstreamer_without_support_is_clear_error() -> None:
    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="without GStreamer") as info:
        open_source("videotestsrc ! videoconvert")
    assert "JetPack" in (info.value.hint or "")


def test_handoff_latest_only_counts_drops_and_propagates_error() -> None:
    h: Handoff[int] = Handoff(latest_only=True)
    for i in range(5):
        assert h.put(i)
    assert h.dropped == 4 and h.get(0.01) == 4 and h.get(0.01) is None
    h.put(5)
    h.finish(SourceError("gone"))
    assert h.get(0.01) == 5  # frames before the error are still delivered
    with pytest.raises(SourceError, match="gone"):
        h.get(0.01)


def test_handoff_fifo_blocks_producer_until_consumed() -> None:
    h: Handoff[int] = Handoff(2)
    done = threading.Event()

    def produce() -> None:
        for i in range(5):
            h.put(i)
        h.finish()
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(0.05)
    assert not done.is_set()  # blocked: queue full
    got = []
    while not h.finished:
        item = h.get(0.5)
        if item is not None:
            got.append(item)
    assert got == [0, 1, 2, 3, 4] and h.dropped == 0
