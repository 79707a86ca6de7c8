"""ROS 2 round trip: a real publisher of 640x480 images -> `edgecv ros` (another process) -> a detections subscriber.

Run in the ROS venv (.ci/run builds it):
    FASTDDS_DEFAULT_PROFILES_FILE=ros/fastdds_large_images.xml .venv-ros/bin/python scripts/bench_ros.py [--frames 100] [--track]

Images go one at a time (the next after the previous image's detections came back), so
the figure is latency, not throughput. Prints the round trip (publish -> Detection2DArray
received) and the node's own image->detections time; the difference is ROS transport
both ways (serialization, DDS, executor wake-ups).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "shapes-det.onnx"))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--track", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "ros" / "fastdds_large_images.xml"))

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    sys.path.insert(0, str(ROOT))
    import cv2

    from edgecv.data.synthetic import write_demo_video
    from edgecv.ros.convert import bgr_to_image

    video = write_demo_video(Path(os.environ.get("TMPDIR", "/tmp")) / f"edgecv-bench-ros-{os.getpid()}.avi", num_frames=24, seed=7)
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    video.unlink()

    cmd = [sys.executable, "-c", "from edgecv.cli import main; main()", "ros", args.model, *(["--track"] if args.track else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("edgecv_bench")
    got: dict[int, float] = {}
    node.create_subscription(Detection2DArray, "detections", lambda m: got.setdefault(m.header.stamp.sec, time.perf_counter()), QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    t_start = time.monotonic()
    while pub.get_subscription_count() == 0:
        if proc.poll() is not None or time.monotonic() - t_start > 60:
            raise SystemExit(f"the node did not come up:\n{proc.communicate()[0]}")
        time.sleep(0.02)
    discovery = time.monotonic() - t_start
    rtt, lost = [], 0
    for i in range(args.frames + 5):  # the first 5 warm up
        header = Header(frame_id="bench")
        header.stamp.sec = i
        t0 = time.perf_counter()
        pub.publish(bgr_to_image(frames[i % len(frames)], header, Image))
        while i not in got and time.perf_counter() - t0 < 2.0:
            time.sleep(0.0005)
        if i not in got:
            lost += 1
        elif i >= 5:
            rtt.append((got[i] - t0) * 1e3)
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=30)[0]
    r = np.asarray(rtt)
    print(f"node up and discovered in {discovery:.1f} s; {len(r)} images, {lost} lost")
    print(f"round trip 640x480 bgr8 -> Detection2DArray: p50 {np.median(r):.1f} ms, p90 {np.percentile(r, 90):.1f} ms, max {r.max():.1f} ms")
    print("node:", output.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
