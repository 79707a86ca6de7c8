"""Frame sources: cameras, network streams, GStreamer (Jetson CSI), video files and images.

:func:`open_source` picks the kind from its ``spec`` and returns a started
:class:`Source`. Every source captures on its own thread, so decoding overlaps
inference:

* **live** sources (camera, URL, GStreamer, ``realtime=True`` files) keep only the
  newest frame: a slow consumer always gets the latest frame, skipped frames are
  counted in ``stats.frames_dropped`` and latency never grows. A live source
  that drops out is reopened with exponential backoff; the consumer just waits,
  and a :class:`SourceError` is raised only after ``max_reconnect_s``.
* **file and image** sources lose no frame: a bounded queue (``queue_size``)
  makes the reader wait for the consumer. Unreadable images are counted in
  ``stats.bad_frames`` and skipped.

Opening fails at once, with a hint, when the source cannot be used at all (a
missing camera or file, an unreachable URL, an undecodable video).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import cv2

from edgecv.errors import ConfigError, SourceError
from edgecv.stream.capture import (
    CaptureSource,
    Frame,
    ImageSource,
    ReconnectPolicy,
    Source,
    SourceStats,
    read_image,
)

log = logging.getLogger(__name__)

__all__ = [
    "CaptureSource",
    "Frame",
    "ImageSource",
    "ReconnectPolicy",
    "Source",
    "SourceStats",
    "csi_pipeline",
    "gstreamer_pipeline",
    "has_gstreamer",
    "is_gstreamer",
    "is_remote_file",
    "open_source",
    "read_image",
    "redact",
]

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm", ".jp2"})
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".avi",
        ".mkv",
        ".mov",
        ".m4v",
        ".webm",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".flv",
        ".wmv",
        ".3gp",
        ".mjpeg",
        ".h264",
        ".h265",
        ".hevc",
    }
)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "rtp", "srt")
GST_ELEMENTS = frozenset(
    {
        "nvarguscamerasrc",
        "nvv4l2camerasrc",
        "v4l2src",
        "videotestsrc",
        "rtspsrc",
        "uridecodebin",
        "filesrc",
        "udpsrc",
        "souphttpsrc",
        "libcamerasrc",
    }
)
_URL_RE = re.compile(r"^(" + "|".join(URL_SCHEMES) + r")://", re.IGNORECASE)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def redact(url: str) -> str:
    """Hide credentials in a URL: ``rtsp://user:pw@host`` -> ``rtsp://***@host``."""
    return re.sub(r"//[^/@\s]*@", "//***@", url)


# -- GStreamer ---------------------------------------------------------------------------
def has_gstreamer() -> bool:
    """True when this OpenCV build has the GStreamer video backend."""
    match = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(match and match.group(1).upper().startswith("YES"))


def is_gstreamer(spec: str) -> bool:
    """True when ``spec`` looks like a GStreamer pipeline (has ``!`` or starts with a known source element)."""
    words = spec.strip().split(maxsplit=1)
    return "!" in spec or (bool(words) and words[0] in GST_ELEMENTS)


def gstreamer_pipeline(spec: str) -> str:
    """Make ``spec`` usable by OpenCV: append a BGR ``appsink`` unless it already ends with one."""
    spec = spec.strip().rstrip("!").strip()
    last = spec.rsplit("!", 1)[-1].strip()
    if last.startswith("appsink"):
        return spec
    return f"{spec} ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """GStreamer pipeline for a Jetson CSI camera (``nvarguscamerasrc``), ending in a BGR appsink.

    ``flip`` is ``nvvidconv flip-method`` (0 none, 2 rotate 180, 4/6 mirror).
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, width={width}, height={height}, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


# -- open_source -------------------------------------------------------------------------
def open_source(
    spec: str | int | Path,
    *,
    realtime: bool = False,
    reconnect: bool = True,
    open_timeout_s: float = 5.0,
    read_timeout_s: float | None = None,
    max_reconnect_s: float = 30.0,
    backoff_s: tuple[float, float] = (0.5, 5.0),
    loop: bool = False,
    queue_size: int = 4,
    camera_size: tuple[int, int] | None = None,
    camera_fps: float | None = None,
) -> Source:
    """Open a camera, stream, GStreamer pipeline, video file or images and start capturing.

    Args:
        spec: camera index (``0``, ``"0"``, ``/dev/video0``); URL (rtsp/rtmp/http(s)/tcp/udp/...);
            GStreamer pipeline (has ``!``, e.g. :func:`csi_pipeline`); video file; image file,
            folder of images, or glob (``"frames/*.jpg"``).
        realtime: play a video file at its own fps as a live source (newest frame, drops counted).
        reconnect: reopen a live source that drops out (with backoff) instead of ending.
        open_timeout_s: network streams: how long opening may take.
        read_timeout_s: network streams: how long a read may stall before it counts as a drop-out
            (default: ``open_timeout_s``).
        max_reconnect_s: give up (``SourceError``) after this long without a frame from a dropped source.
        backoff_s: (first, longest) wait between reconnect attempts; each wait doubles.
        loop: restart a video file at its end (endless demo / soak runs).
        queue_size: frames a file/image source may read ahead.
        camera_size: cameras: requested (width, height).
        camera_fps: cameras: requested frame rate.

    Raises:
        SourceError: the source does not exist or cannot be opened/read (the message says which and how to fix it).
        ConfigError: invalid options.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, Path)):
        raise ConfigError(f"source must be a path, URL, pipeline or camera index, got {spec!r}")
    if open_timeout_s <= 0 or (read_timeout_s is not None and read_timeout_s <= 0) or queue_size < 1:
        raise ConfigError(
            f"invalid source options: open_timeout_s={open_timeout_s}, read_timeout_s={read_timeout_s}, queue_size={queue_size}",
            hint="timeouts must be > 0 and queue_size >= 1",
        )
    policy = ReconnectPolicy(backoff_s[0], backoff_s[1], max_reconnect_s) if reconnect else None
    text = str(spec).strip()
    kind = source_kind(spec)
    if kind == "camera":
        index = int(text[len("/dev/video") :]) if text.startswith("/dev/video") else int(text)
        return _open_camera(index, text, policy, queue_size, camera_size, camera_fps)
    if kind == "remote-file":  # a video file on a web server ends; it is not a live stream
        return _open_video(text, realtime, loop, queue_size, open_timeout_s, read_timeout_s or open_timeout_s)
    if kind == "stream":
        return _open_stream(text, open_timeout_s, read_timeout_s or open_timeout_s, policy, queue_size)
    if kind == "video":
        return _open_video(Path(text).expanduser(), realtime, loop, queue_size)
    if kind == "gstreamer":
        return _open_gstreamer(text, policy, queue_size)
    _images_only(realtime, loop)
    if kind == "folder":
        return _open_folder(Path(text).expanduser(), queue_size)
    if kind == "image":
        path = Path(text).expanduser()
        return ImageSource([path], name=str(path), queue_size=queue_size)
    return _open_glob(text, queue_size)


LIVE_KINDS = frozenset({"camera", "stream", "gstreamer"})


def source_kind(spec: str | int | Path) -> str:
    """What ``spec`` names, as :func:`open_source` reads it, without opening it: ``"camera"``,
    ``"stream"``, ``"gstreamer"`` (live: :data:`LIVE_KINDS`), ``"remote-file"``, ``"video"``,
    ``"folder"``, ``"image"`` or ``"glob"``.

    Raises:
        SourceError: nothing by that name exists.
    """
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit() or re.fullmatch(r"/dev/video\d+", text):
        return "camera"
    if _URL_RE.match(text):
        return "remote-file" if is_remote_file(text) else "stream"
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "image" if path.suffix.lower() in IMAGE_EXTS else "video"
    if is_gstreamer(text):
        return "gstreamer"
    if glob.has_magic(text):
        return "glob"
    raise SourceError(
        f"source {text!r} not found",
        hint="check the path; use a camera index (0), a URL (rtsp://host/stream), a GStreamer pipeline, a video file, an image folder or a glob",
    )


def _open_camera(
    index: int,
    label: str,
    policy: ReconnectPolicy | None,
    queue_size: int,
    size: tuple[int, int] | None,
    fps: float | None,
) -> Source:
    linux = sys.platform.startswith("linux")
    found = sorted(glob.glob("/dev/video*"), key=lambda p: _natural_key(Path(p))) if linux else []
    listing = f"found: {', '.join(found)}" if found else "no /dev/video* devices exist"
    hint = (
        "list cameras with `ls /dev/video*` or `v4l2-ctl --list-devices`; check the cable/driver and that you may "
        "use it (`sudo usermod -aG video $USER`, then log in again); for a video file or stream pass its path/URL (--source)"
    )
    device = Path(f"/dev/video{index}")
    if linux and not device.exists():
        raise SourceError(f"camera {index} not found ({listing})", hint=hint)
    if linux and not os.access(device, os.R_OK | os.W_OK):
        raise SourceError(
            f"camera {index} ({device}) is not accessible: permission denied",
            hint="sudo usermod -aG video $USER, then log in again",
        )
    api = cv2.CAP_V4L2 if linux else cv2.CAP_ANY

    def opener() -> Any:
        cap = cv2.VideoCapture(index, api)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
            if size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    def fail(what: str) -> SourceError:
        busy = " (is another program using it?)" if what == "read" else ""
        csi = (
            "; a Jetson CSI camera (no V4L2 BGR output) needs the GStreamer pipeline from edgecv.stream.csi_pipeline()"
        )
        return SourceError(
            f"camera {index} ({label}) could not be {'opened' if what == 'open' else 'read'}{busy}; {listing}",
            hint=hint + csi,
        )

    return CaptureSource(
        opener, kind="camera", name=f"camera {index}", live=True, reconnect=policy, fail=fail, queue_size=queue_size
    )


def _ffmpeg_timeouts(open_timeout_s: float, read_timeout_s: float) -> list[int]:
    """VideoCapture parameters bounding how long FFmpeg may block on open and on each read."""
    return [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]


def _open_stream(
    url: str, open_timeout_s: float, read_timeout_s: float, policy: ReconnectPolicy | None, queue_size: int
) -> Source:
    name = redact(url)
    params = _ffmpeg_timeouts(open_timeout_s, read_timeout_s)

    def opener() -> Any:
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    def fail(what: str) -> SourceError:
        return SourceError(
            f"cannot {what} stream {name} (waited up to {open_timeout_s:g} s)",
            hint="check the URL, credentials and port, and that the camera/server is up (try `ffprobe URL`); "
            "raise --open-timeout on slow networks",
        )

    return CaptureSource(
        opener, kind="stream", name=name, live=True, reconnect=policy, fail=fail, queue_size=queue_size
    )


def _open_gstreamer(spec: str, policy: ReconnectPolicy | None, queue_size: int) -> Source:
    if not has_gstreamer():
        raise SourceError(
            f"this OpenCV ({cv2.__version__}) was built without GStreamer, so it cannot open the pipeline {spec!r}",
            hint="on Jetson use JetPack's OpenCV (`pip uninstall opencv-python opencv-python-headless`, then "
            "`sudo apt install python3-opencv`); elsewhere build OpenCV with -DWITH_GSTREAMER=ON, or pass a URL or file instead",
        )
    pipeline = gstreamer_pipeline(spec)
    if pipeline != spec.strip():
        log.info("appended a BGR appsink to the GStreamer pipeline: %s", pipeline)

    def opener() -> Any:
        return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)

    def fail(what: str) -> SourceError:
        return SourceError(
            f"cannot {what} GStreamer pipeline {pipeline!r}",
            hint=f"test it with `gst-launch-1.0 {pipeline.replace('appsink', 'fakesink')}`; for a CSI camera check "
            "`nvargus-daemon` is running (sudo systemctl restart nvargus-daemon)",
        )

    return CaptureSource(
        opener, kind="gstreamer", name="gstreamer", live=True, reconnect=policy, fail=fail, queue_size=queue_size
    )


def is_remote_file(url: str) -> bool:
    """True for an http(s) URL whose path ends in a video suffix (``https://host/clip.mp4``)."""
    parsed = urlparse(url)
    return parsed.scheme.lower() in ("http", "https") and PurePosixPath(parsed.path).suffix.lower() in VIDEO_EXTS


def _images_only(realtime: bool, loop: bool) -> None:
    if realtime or loop:
        log.warning("realtime/loop apply to video files; ignored for images")


def _open_video(
    path: Path | str,
    realtime: bool,
    loop: bool,
    queue_size: int,
    open_timeout_s: float = 0.0,
    read_timeout_s: float = 0.0,
) -> Source:
    name = redact(str(path))
    params = _ffmpeg_timeouts(open_timeout_s, read_timeout_s)

    def opener() -> Any:
        if open_timeout_s:  # a file on a web server
            return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(str(path))

    def fail(what: str) -> SourceError:
        known = PurePosixPath(str(path)).suffix.lower() in VIDEO_EXTS
        kind = "video" if known else "file (not a known image or video type)"
        return SourceError(
            f"cannot {what} {kind} {name}",
            hint="the file may be corrupt, empty, or use a codec this OpenCV cannot decode; check it with `ffprobe FILE`, "
            "or re-encode it: ffmpeg -i FILE -c:v libx264 out.mp4",
        )

    return CaptureSource(
        opener, kind="file", name=name, live=realtime, pace=realtime, loop=loop, fail=fail, queue_size=queue_size
    )


def _open_folder(folder: Path, queue_size: int) -> Source:
    files = [p for p in folder.iterdir() if p.is_file()]
    images = sorted((p for p in files if p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
    if not images:
        videos = [p.name for p in files if p.suffix.lower() in VIDEO_EXTS]
        extra = f"; it has videos ({', '.join(sorted(videos)[:3])}): pass one of them" if videos else ""
        raise SourceError(
            f"no images in folder {folder}{extra}", hint=f"image types read: {', '.join(sorted(IMAGE_EXTS))}"
        )
    return ImageSource(images, name=str(folder), queue_size=queue_size)


def _open_glob(pattern: str, queue_size: int) -> Source:
    matches = [Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True)]
    images = sorted((p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
    if not images:
        raise SourceError(
            f"no images match {pattern!r} ({len(matches)} paths matched)",
            hint=f"check the pattern (quote it so the shell does not expand it); image types read: {', '.join(sorted(IMAGE_EXTS))}",
        )
    return ImageSource(images, name=pattern, queue_size=queue_size)
