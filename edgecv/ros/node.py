"""The edgecv ROS 2 detector node: sensor_msgs/Image in, vision_msgs/Detection2DArray out.

Two inputs: subscribe to an image topic (default), or open a camera/video/stream
itself (``source``) through edgecv's capture (reconnects included). Either way the
model sees only the newest frame: images that arrive while it is busy replace the
waiting one (a depth-1 mailbox, counted as dropped), so latency never builds up.

Published:
    ``detections`` (vision_msgs/Detection2DArray): per input image, with the image's
        header (stamp and frame_id), even when nothing is detected.
    ``image_annotated`` (sensor_msgs/Image, bgr8): boxes, classes, scores and track IDs
        drawn, only while someone subscribes (drawing costs nothing otherwise).

ROS parameters (``--ros-args -p name:=value`` overrides the values the node was built with):
    model (string), conf (double), iou (double), classes (integer array, empty = all),
    track (bool), qos_reliable (bool), qos_depth (int), frame_id (string, for ``source``).
    ``conf``, ``iou`` and ``classes`` can be changed while the node runs (``ros2 param set``);
    the others are read at start.

QoS: the image subscription is best effort with depth 1 by default (sensor data:
a late frame is worth nothing); ``qos_reliable`` / ``qos_depth`` change it. The
publishers are reliable, so both reliable and best-effort subscribers receive them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecv._optional import require
from edgecv.errors import ConfigError, EdgecvError
from edgecv.results import Detections, FrameResult, StageTimings
from edgecv.ros.convert import bgr_to_image, detections_to_msg, image_to_bgr
from edgecv.stream._handoff import Handoff
from edgecv.track import ByteTrack, TrackConfig

log = logging.getLogger(__name__)

_ROS_HINT = "source /opt/ros/$ROS_DISTRO/setup.bash (apt install ros-$ROS_DISTRO-vision-msgs)"


@dataclass(frozen=True, slots=True)
class RosNodeConfig:
    """What the node runs and how it talks to ROS; ROS parameters of the same names override it at start.

    Attributes:
        model: model file (.onnx / .engine).
        conf, iou: score and NMS IoU thresholds.
        classes: keep only these class ids (None: all).
        track: give detections ByteTrack IDs (``Detection2D.id``).
        track_config: ByteTrack's thresholds (None: defaults).
        source: open this camera / video / URL instead of subscribing to ``image``.
        frame_id: ``header.frame_id`` of the detections in ``source`` mode.
        max_frames: ``source`` mode: stop after this many frames (None: until the source ends).
        wait_for_subscriber: ``source`` mode: wait up to this many seconds for a ``detections``
            subscriber before opening the source (so a recorder gets the first frames); 0: start at once.
        qos_reliable: reliable image subscription instead of best effort.
        qos_depth: the image subscription's (and publishers') history depth.
        node_name: the ROS node name.
        threads: ONNX Runtime intra-op threads (None: its default).
        serve: also serve the live preview page, ``/api/status`` and ``/metrics`` on this
            ``[HOST:]PORT`` (see :mod:`edgecv.serve`; binds 127.0.0.1 unless a host is given).
        serve_token: the token the preview requires (None: the ``EDGECV_SERVE_TOKEN`` variable, or none).
    """

    model: str
    conf: float = 0.25
    iou: float = 0.45
    classes: tuple[int, ...] | None = None
    track: bool = False
    track_config: TrackConfig | None = None
    source: str | None = None
    frame_id: str = "camera"
    max_frames: int | None = None
    wait_for_subscriber: float = 0.0
    qos_reliable: bool = False
    qos_depth: int = 1
    node_name: str = "edgecv"
    threads: int | None = None
    serve: str | None = None
    serve_token: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0 or not 0.0 <= self.iou <= 1.0:
            raise ConfigError(f"conf and iou must be in [0, 1], got conf={self.conf}, iou={self.iou}")
        if self.qos_depth < 1:
            raise ConfigError(f"qos_depth must be >= 1, got {self.qos_depth}", hint="1 keeps only the newest image")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be positive, got {self.max_frames}")
        if self.max_frames is not None and self.source is None:
            raise ConfigError("max_frames applies to a node that opens its own source", hint="pass source=... (--source) or drop max_frames")
        if self.wait_for_subscriber < 0:
            raise ConfigError(f"wait_for_subscriber must be >= 0 seconds, got {self.wait_for_subscriber}")
        if not self.node_name:
            raise ConfigError("node_name must not be empty")


@dataclass
class NodeStats:
    """Counters of a running node (read them from any thread; they only grow)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    bad_frames: int = 0
    annotated: int = 0
    process_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the newest 1,000: bounded on a robot that runs for days

    def summary(self) -> str:
        ms = np.asarray(self.process_ms) if self.process_ms else np.zeros(1)
        return (
            f"{self.processed} images processed ({self.received} received, {self.dropped} dropped as stale, "
            f"{self.bad_frames} unreadable, {self.annotated} annotated); image->detections p50 {np.median(ms):.1f} ms"
        )


class DetectorNode:
    """A ROS 2 node running an edgecv detector (see the module docstring for topics and parameters).

    Create it after ``rclpy.init()``; add :attr:`node` to an executor and spin it, or call
    :func:`run_node`, which does all of that. :meth:`close` stops it cleanly.

    Args:
        config: what to run; ROS parameters override its fields.
        context: an rclpy context (None: the default one).
    """

    def __init__(self, config: RosNodeConfig, *, context: Any = None) -> None:
        rclpy = require("rclpy", extra="ros", jetson=_ROS_HINT)
        self._msgs = require("vision_msgs.msg", extra="ros", jetson=_ROS_HINT)
        self._sensor = require("sensor_msgs.msg", extra="ros", jetson=_ROS_HINT)
        from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        self._SetParametersResult = SetParametersResult
        self.node = rclpy.create_node(config.node_name, context=context)
        self.config = cfg = self._read_parameters(config, ParameterDescriptor)
        self.stats = NodeStats()
        self._stop = threading.Event()
        self.finished = threading.Event()  # set when a source ends (source mode)
        self._mailbox: Handoff[Any] = Handoff(latest_only=True)
        self._lock = threading.Lock()
        self.error: BaseException | None = None

        import edgecv
        from edgecv.vision.draw import default_annotator

        model = edgecv.load(cfg.model, conf=cfg.conf, iou=cfg.iou, classes=list(cfg.classes) if cfg.classes else None, threads=cfg.threads)
        if model.task != "detect":
            model.close()
            self.node.destroy_node()
            raise ConfigError(f"the ROS node publishes detections; {Path(cfg.model).name} is a {model.task} model", hint="use a detection model")
        self.model = model
        self.tracker = ByteTrack(cfg.track_config) if cfg.track else None
        self._annotator = default_annotator("detect")
        self.server: Any = None
        self._preview: Any = None
        if cfg.serve is not None:
            self._start_preview(cfg, model)

        sub_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=cfg.qos_depth,
            reliability=ReliabilityPolicy.RELIABLE if cfg.qos_reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self.det_pub = self.node.create_publisher(self._msgs.Detection2DArray, "detections", pub_qos)
        self.img_pub = self.node.create_publisher(self._sensor.Image, "image_annotated", pub_qos)
        self.node.add_on_set_parameters_callback(self._on_set_parameters)
        if cfg.source is None:
            self.node.create_subscription(self._sensor.Image, "image", self._on_image, sub_qos)
            self._worker = threading.Thread(target=self._work, name="edgecv-ros-infer", daemon=True)
        else:
            self._worker = threading.Thread(target=self._run_source, name="edgecv-ros-source", daemon=True)
        self._worker.start()
        log.info(
            "%s: %s -> %s%s (%s QoS, depth %d)%s",
            self.node.get_fully_qualified_name(),
            cfg.source or self.node.resolve_topic_name("image"),
            self.node.resolve_topic_name("detections"),
            ", tracking" if cfg.track else "",
            "reliable" if cfg.qos_reliable else "best-effort",
            cfg.qos_depth,
            f", annotated images on {self.node.resolve_topic_name('image_annotated')} while subscribed",
        )

    # ------------------------------------------------------------ parameters
    def _read_parameters(self, cfg: RosNodeConfig, descriptor: Any) -> RosNodeConfig:
        """Declare the ROS parameters with ``cfg``'s values as defaults; return ``cfg`` with the values ROS gives."""
        from rclpy.exceptions import ParameterUninitializedException
        from rclpy.parameter import Parameter

        n = self.node

        def dyn() -> Any:  # one descriptor per parameter: rclpy writes the parameter's type into it
            return descriptor(description="changeable at run time")

        n.declare_parameter("model", cfg.model, descriptor(description="model file (.onnx / .engine); read at start", read_only=True))
        n.declare_parameter("conf", float(cfg.conf), dyn())
        n.declare_parameter("iou", float(cfg.iou), dyn())
        # an integer array; declared by type alone when empty (rclpy cannot type an empty list)
        n.declare_parameter("classes", list(cfg.classes) if cfg.classes else Parameter.Type.INTEGER_ARRAY, dyn())
        n.declare_parameter("track", bool(cfg.track), descriptor(description="ByteTrack IDs; read at start", read_only=True))
        n.declare_parameter("qos_reliable", bool(cfg.qos_reliable), descriptor(read_only=True))
        n.declare_parameter("qos_depth", int(cfg.qos_depth), descriptor(read_only=True))
        n.declare_parameter("frame_id", cfg.frame_id, descriptor(read_only=True))
        try:
            classes = n.get_parameter("classes").value
        except ParameterUninitializedException:
            classes = None
        return replace(
            cfg,
            model=str(n.get_parameter("model").value),
            conf=float(n.get_parameter("conf").value),
            iou=float(n.get_parameter("iou").value),
            classes=tuple(int(c) for c in classes) if classes else None,
            track=bool(n.get_parameter("track").value),
            qos_reliable=bool(n.get_parameter("qos_reliable").value),
            qos_depth=int(n.get_parameter("qos_depth").value),
            frame_id=str(n.get_parameter("frame_id").value),
        )

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        """``ros2 param set``: conf, iou and classes apply from the next image; the rest are read-only."""
        updates: dict[str, Any] = {}
        for p in params:
            if p.name in ("conf", "iou"):
                value = float(p.value)
                if not 0.0 <= value <= 1.0:
                    return self._SetParametersResult(successful=False, reason=f"{p.name} must be in [0, 1], got {value}")
                updates[p.name] = value
            elif p.name == "classes":
                classes = [int(c) for c in (p.value or [])]
                bad = [c for c in classes if not 0 <= c < self.model.meta.num_classes] if hasattr(self, "model") else []
                if bad:
                    return self._SetParametersResult(successful=False, reason=f"class ids {bad} out of range (the model has {self.model.meta.num_classes})")
                updates["classes"] = classes or None
        if hasattr(self, "model"):
            with self._lock:
                for name, value in updates.items():
                    setattr(self.model, name, value)
            if updates:
                log.info("parameters changed: %s", updates)
        return self._SetParametersResult(successful=True)

    # ------------------------------------------------------------ subscription mode
    def _on_image(self, msg: Any) -> None:
        self.stats.received += 1
        self._mailbox.put((msg, time.perf_counter()))
        self.stats.dropped = self._mailbox.dropped

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._mailbox.get(timeout=0.1)
                if item is None:
                    continue
                msg, t0 = item
                try:
                    frame = image_to_bgr(msg)
                except ConfigError as exc:
                    self.stats.bad_frames += 1
                    if self.stats.bad_frames == 1 or self.stats.bad_frames % 100 == 0:
                        log.warning("skipping an image (%d so far): %s", self.stats.bad_frames, exc)
                    continue
                with self._lock:
                    detections = self.model(frame)
                self._publish(detections, msg.header, frame, t0)
        except BaseException as exc:  # surfaced by run_node: a node that silently stops is worse
            self.error = exc
            self.finished.set()

    # ------------------------------------------------------------ source mode
    def _run_source(self) -> None:
        from edgecv.stream.pipeline import run_pipeline
        from edgecv.stream.sinks import CallbackSink
        from edgecv.stream.sources import open_source

        cfg = self.config
        try:
            deadline = time.monotonic() + cfg.wait_for_subscriber
            while self.det_pub.get_subscription_count() == 0 and time.monotonic() < deadline and not self._stop.is_set():
                time.sleep(0.05)
            spec: Any = int(cfg.source) if cfg.source is not None and cfg.source.isdigit() else cfg.source
            src = open_source(spec)
            sink = CallbackSink(self._on_frame_result, with_image=True)
            summary = run_pipeline(self.model, src, [sink], max_frames=cfg.max_frames, annotate=False, overlay=False, stop_event=self._stop)
            self.stats.dropped = int(summary.to_dict().get("dropped", 0) or 0)
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()

    def _on_frame_result(self, result: Any, frame: np.ndarray) -> None:
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        self.stats.received += 1
        sec = int(result.timestamp)
        header = Header(stamp=Time(sec=sec, nanosec=int((result.timestamp - sec) * 1e9)), frame_id=self.config.frame_id)
        self._publish(result.result, header, frame, None)

    def _start_preview(self, cfg: RosNodeConfig, model: Any) -> None:
        """The live preview / metrics server (``serve``): one stream, fed from :meth:`_publish`."""
        from edgecv.serve import PreviewServer, ServeConfig

        try:
            self.server = PreviewServer(ServeConfig.parse(cfg.serve, token=cfg.serve_token, option="serve"))
        except BaseException:
            model.close()
            self.node.destroy_node()
            raise
        what = cfg.source or self.node.resolve_topic_name("image")
        self._preview = self.server.sink("cam0", model=model, source=what, annotate=True, live=True)
        self.server.hub.channel("cam0").set_counters(self._counters)
        log.info("live preview on %s", self.server.url)

    def _counters(self) -> dict[str, Any]:
        return {"dropped": self.stats.dropped, "bad_frames": self.stats.bad_frames, "reconnects": 0, "live": True}

    # ------------------------------------------------------------ output
    def _publish(self, detections: Detections, header: Any, frame: np.ndarray, t0: float | None) -> None:
        if self.tracker is not None:
            detections = self.tracker.update(detections)
        self.det_pub.publish(detections_to_msg(detections, header, self._msgs))
        ms = (time.perf_counter() - t0) * 1e3 if t0 is not None else 0.0
        if t0 is not None:
            self.stats.process_ms.append(ms)
        self.stats.processed += 1
        if self._preview is not None:  # the preview draws on its own copy, on the server's thread
            stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
            self._preview.write(frame, FrameResult(self.stats.processed - 1, stamp, detections, StageTimings(infer=ms)))
        if self.img_pub.get_subscription_count() > 0:  # draw only for someone
            if self._preview is not None:
                frame = frame.copy()  # the preview still holds the undrawn frame
            self._annotator.annotate(frame, detections)
            self.img_pub.publish(bgr_to_image(frame, header, self._sensor.Image))
            self.stats.annotated += 1

    # ------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the worker, destroy the node and close the model (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._mailbox.close()
        self._worker.join(timeout=10.0)
        if self._worker.is_alive():
            log.warning("the inference thread did not stop within 10 s")
        self.node.destroy_node()
        if self.server is not None:
            self.server.close()
        self.model.close()
        log.info("%s stopped: %s", self.config.node_name, self.stats.summary())


def run_node(config: RosNodeConfig, ros_args: Sequence[str] = ()) -> NodeStats:
    """Initialize rclpy, run a :class:`DetectorNode` until Ctrl+C / SIGTERM / ``ros2 lifecycle``-free shutdown
    or the end of its source, and shut everything down cleanly.

    Args:
        config: the node's settings.
        ros_args: command-line ROS arguments (``--ros-args -p conf:=0.5 -r image:=/camera/image_raw``).

    Returns:
        The node's counters.

    Raises:
        EdgecvError: the model or source failed (the node was shut down first).
    """
    rclpy = require("rclpy", extra="ros", jetson=_ROS_HINT)
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=["edgecv", *ros_args])
    node = None
    try:
        node = DetectorNode(config)
        executor = SingleThreadedExecutor()
        executor.add_node(node.node)
        try:
            while rclpy.ok() and not node.finished.is_set():
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            log.info("shutting down")
        if node.error is not None:
            if isinstance(node.error, EdgecvError):
                raise node.error
            raise RuntimeError(f"the node's worker failed: {node.error!r}") from node.error
        return node.stats
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
