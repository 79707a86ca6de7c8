"""`edgecv ros`: the model as a ROS 2 node (sensor_msgs/Image in, vision_msgs/Detection2DArray out)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from edgecv.cli.app import app, handle_errors
from edgecv.cli.options import default_model, int_list
from edgecv.errors import ArtifactError, ConfigError
from edgecv.log import out

log = logging.getLogger("edgecv.cli")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def ros(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Argument(help="Detection model (default: the shipped detector).")] = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Open this camera index / video / URL instead of subscribing to `image`.", rich_help_panel="Input")] = None,
    frame_id: Annotated[str, typer.Option(help="header.frame_id of the detections with --source.", rich_help_panel="Input")] = "camera",
    max_frames: Annotated[int | None, typer.Option(help="With --source: stop after N frames.", rich_help_panel="Input")] = None,
    wait_subscriber: Annotated[float, typer.Option(help="With --source: wait up to this many seconds for a detections subscriber before starting.", rich_help_panel="Input")] = 0.0,
    conf: Annotated[float, typer.Option(help="Score threshold (ROS parameter `conf`).", rich_help_panel="Model")] = 0.25,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold (ROS parameter `iou`).", rich_help_panel="Model")] = 0.45,
    classes: Annotated[str | None, typer.Option(help="Keep only these class ids, e.g. 0,2 (ROS parameter `classes`).", rich_help_panel="Model")] = None,
    track: Annotated[bool, typer.Option("--track", help="ByteTrack IDs in Detection2D.id (ROS parameter `track`).", rich_help_panel="Model")] = False,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads.", rich_help_panel="Model")] = None,
    reliable: Annotated[bool, typer.Option("--reliable", help="Reliable image subscription (default: best effort, sensor data).", rich_help_panel="ROS")] = False,
    qos_depth: Annotated[int, typer.Option(help="Image subscription history depth (1: newest image only).", rich_help_panel="ROS")] = 1,
    node_name: Annotated[str, typer.Option(help="ROS node name.", rich_help_panel="ROS")] = "edgecv",
    serve: Annotated[str | None, typer.Option("--serve", metavar="[HOST:]PORT", help="Also serve the live preview page, /api/status and /metrics (as `run --serve`).", rich_help_panel="Serve")] = None,
    serve_token: Annotated[str | None, typer.Option("--serve-token", envvar="EDGECV_SERVE_TOKEN", show_envvar=True, help="Require this token for the preview.", rich_help_panel="Serve")] = None,
) -> None:
    """Run a detector as a ROS 2 node: subscribes to `image`, publishes `detections` and `image_annotated`.

    Topics are relative names: remap them with ROS arguments after the options, e.g.
    edgecv ros model.onnx --track --ros-args -r image:=/camera/image_raw -p conf:=0.4
    Ctrl+C (or the launch system's SIGINT) shuts the node down cleanly and exits 0.
    """
    from edgecv.ros.node import RosNodeConfig, run_node

    ros_args = list(ctx.args)
    if ros_args and ros_args[0] != "--ros-args":
        raise ConfigError(f"unexpected arguments {' '.join(ros_args)!r}", hint="ROS arguments go after --ros-args, e.g. --ros-args -p conf:=0.4")
    chosen = int_list(classes, "--classes")
    path = default_model(model)
    if not path.is_file():  # before rclpy is needed: a wrong path is the first thing to say
        raise ArtifactError(f"model file not found: {path}", hint="pass an .onnx or .engine file written by edgecv")
    cfg = RosNodeConfig(
        model=str(path),
        conf=conf,
        iou=iou,
        classes=tuple(chosen) if chosen else None,
        track=track,
        source=source,
        frame_id=frame_id,
        max_frames=max_frames,
        wait_for_subscriber=wait_subscriber,
        qos_reliable=reliable,
        qos_depth=qos_depth,
        node_name=node_name,
        threads=threads,
        serve=serve,
        serve_token=serve_token,
    )
    stats = run_node(cfg, ros_args)
    out.print(f"{node_name}: {stats.summary()}", highlight=False, soft_wrap=True)
