"""The ROS 2 node against real rclpy publishers and subscribers and real vision_msgs messages.

Needs ROS 2 from PyPI and vision_msgs built from its .msg files: the `.venv-ros`
venv (scripts/build_vision_msgs.sh), where CI runs this file (`-m ros`); elsewhere it skips.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")
vision_msgs = pytest.importorskip("vision_msgs.msg")

import cv2  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

import edgecv  # noqa: E402
from edgecv.ros.convert import bgr_to_image, msg_to_xyxy  # noqa: E402
from edgecv.ros.node import DetectorNode, RosNodeConfig  # noqa: E402

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> str:
    """A DDS domain of this test's own, so parallel runs on the machine do not see each other."""
    domain = str(100 + os.getpid() % 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # 640x480 images between processes need Fast DDS's shared memory segment enlarged (see the file)
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(Path(__file__).resolve().parents[2] / "ros" / "fastdds_large_images.xml"))
    return domain


def frames_of(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()
    return frames


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def check_message(msg, expected, stamp_sec: int, frame_id: str) -> None:  # type: ignore[no-untyped-def]
    assert msg.header.stamp.sec == stamp_sec and msg.header.frame_id == frame_id
    assert len(msg.detections) == len(expected)
    np.testing.assert_allclose(msg_to_xyxy(msg), expected.xyxy, atol=1e-3)
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == expected.class_names
    np.testing.assert_allclose([d.results[0].hypothesis.score for d in msg.detections], expected.scores, atol=1e-6)
    want_ids = [str(t) if t >= 0 else "" for t in expected.tracker_id.tolist()] if expected.tracker_id is not None else [""] * len(expected)
    assert [d.id for d in msg.detections] == want_ids
    assert all(d.header.stamp.sec == stamp_sec for d in msg.detections)


def test_node_process_round_trip(det_onnx: Path, demo_video: Path, ros_domain: str) -> None:
    """`edgecv ros MODEL --track` in its own process: images in from a real publisher, detections out."""
    n = 20
    frames = frames_of(demo_video, n)
    local = edgecv.load(det_onnx, track=True)
    expected = [local(f.copy()) for f in frames]
    assert sum(len(e) for e in expected) > 0 and max(int(e.tracker_id.max(initial=-1)) for e in expected) >= 0

    cmd = [sys.executable, "-c", "from edgecv.cli import main; main()", "ros", str(det_onnx), "--track", "--ros-args", "-p", "iou:=0.45"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("edgecv_test", context=ctx)
    received: dict[int, tuple[object, float]] = {}
    annotated: dict[int, object] = {}
    node.create_subscription(vision_msgs.Detection2DArray, "detections", lambda m: received.setdefault(m.header.stamp.sec, (m, time.perf_counter())), RELIABLE)
    pub = node.create_publisher(Image, "image", BEST_EFFORT)
    executor = MultiThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        wait_for(lambda: pub.get_subscription_count() > 0 or proc.poll() is not None, 30, "the node's image subscription")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        for i, frame in enumerate(frames):  # lock-step: one image, then its detections
            header = Header(frame_id="test_cam")
            header.stamp.sec = 1000 + i
            t0 = time.perf_counter()
            deadline = t0 + 10
            while 1000 + i not in received:  # best effort: resend if an image was lost before discovery settled
                pub.publish(bgr_to_image(frame, header, Image))
                wait_until = time.perf_counter() + 1.0
                while 1000 + i not in received and time.perf_counter() < wait_until:
                    time.sleep(0.002)
                if time.perf_counter() > deadline:
                    proc.send_signal(signal.SIGINT)
                    raise AssertionError(f"no detections for image {i}; node output:\n{proc.communicate(timeout=20)[0]}")
        assert sorted(received) == [1000 + i for i in range(n)]
        for i in range(n):
            check_message(received[1000 + i][0], expected[i], 1000 + i, "test_cam")

        # the annotated image is published only once someone subscribes
        node.create_subscription(Image, "image_annotated", lambda m: annotated.setdefault(m.header.stamp.sec, m), RELIABLE)
        frame = frames[-1]
        deadline = time.monotonic() + 15
        k = 0
        while not annotated:
            assert time.monotonic() < deadline, "no annotated image"
            header = Header(frame_id="test_cam")
            header.stamp.sec = 5000 + k
            pub.publish(bgr_to_image(frame, header, Image))
            k += 1
            time.sleep(0.2)
        sec, img = next(iter(annotated.items()))
        assert img.encoding == "bgr8" and (img.height, img.width) == frame.shape[:2] and img.header.frame_id == "test_cam"
        drawn = np.frombuffer(img.data, np.uint8).reshape(frame.shape)
        assert (drawn != frame).any()  # boxes were drawn
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)  # what ros2 launch sends
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        local.close()
    assert proc.returncode == 0, output
    assert "images processed" in output and "0 unreadable" in output


@pytest.fixture
def ros_context(ros_domain: str):  # type: ignore[no-untyped-def]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def spin(ctx, *nodes):  # type: ignore[no-untyped-def]
    executor = MultiThreadedExecutor(context=ctx)
    for n in nodes:
        executor.add_node(n)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor


def test_node_opens_a_video_itself(det_onnx: Path, demo_video: Path, ros_context) -> None:  # type: ignore[no-untyped-def]
    """Source mode: the node reads the video through edgecv's capture; every frame's detections arrive, tracked."""
    n = 12
    local = edgecv.load(det_onnx, track=True)
    expected = [local(f) for f in frames_of(demo_video, n)]
    listener = rclpy.create_node("listener", context=ros_context)
    got: list[object] = []
    listener.create_subscription(vision_msgs.Detection2DArray, "detections", got.append, RELIABLE)
    cfg = RosNodeConfig(str(det_onnx), track=True, source=str(demo_video), max_frames=n, wait_for_subscriber=20, frame_id="cam0", qos_depth=50)
    node = DetectorNode(cfg, context=ros_context)
    executor = spin(ros_context, listener, node.node)
    try:
        assert node.finished.wait(60) and node.error is None
        wait_for(lambda: len(got) == n, 10, f"{n} detection messages")
        t_prev = 0.0
        for msg, want in zip(got, expected):
            check_message(msg, want, msg.header.stamp.sec, "cam0")
            t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            assert t >= t_prev and abs(t - time.time()) < 120  # capture times, in order
            t_prev = t
        assert node.stats.annotated == 0  # nobody subscribed to image_annotated
    finally:
        executor.shutdown()
        node.close()
        listener.destroy_node()
        local.close()


def test_parameters(det_onnx: Path, ros_context) -> None:  # type: ignore[no-untyped-def]
    from rclpy.parameter import Parameter

    node = DetectorNode(RosNodeConfig(str(det_onnx), conf=0.3, classes=(1,)), context=ros_context)
    try:
        assert node.node.get_parameter("conf").value == 0.3 and node.model.conf == 0.3
        assert list(node.node.get_parameter("classes").value) == [1] and node.model.classes == [1]
        assert node.node.set_parameters([Parameter("conf", value=0.6)])[0].successful
        assert node.model.conf == 0.6
        assert node.node.set_parameters([Parameter("classes", Parameter.Type.INTEGER_ARRAY, [])])[0].successful
        assert node.model.classes is None
        bad = node.node.set_parameters([Parameter("iou", value=1.5)])[0]
        assert not bad.successful and "iou must be in [0, 1]" in bad.reason
        assert not node.node.set_parameters([Parameter("classes", Parameter.Type.INTEGER_ARRAY, [99])])[0].successful
        assert not node.node.set_parameters([Parameter("track", value=True)])[0].successful  # read-only: needs a restart
    finally:
        node.close()
    node.close()  # idempotent


def test_node_serves_its_preview_and_metrics(det_onnx: Path, demo_video: Path, ros_context) -> None:  # type: ignore[no-untyped-def]
    """``serve``: the node's frames and figures reach the preview server (status JSON, an annotated JPEG snapshot)."""
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = 8
    cfg = RosNodeConfig(str(det_onnx), track=True, source=str(demo_video), max_frames=n, serve=f"127.0.0.1:{port}")
    node = DetectorNode(cfg, context=ros_context)
    executor = spin(ros_context, node.node)
    try:
        assert node.finished.wait(60) and node.error is None
        base = f"http://127.0.0.1:{port}"

        def frames_seen() -> int:
            status = json.loads(urllib.request.urlopen(f"{base}/api/status", timeout=5).read())
            return int(status["sources"][0]["frames"])

        wait_for(lambda: frames_seen() == n, 10, f"{n} frames in the preview's status")
        jpeg = urllib.request.urlopen(f"{base}/snapshot/cam0.jpg", timeout=5).read()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == frames_of(demo_video, 1)[0].shape[:2]
    finally:
        executor.shutdown()
        node.close()
