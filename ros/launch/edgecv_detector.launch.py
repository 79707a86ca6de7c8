"""Launch edgecv's detector node on a camera topic (ROS 2 Humble / Jazzy).

    ros2 launch ros/launch/edgecv_detector.launch.py model:=/opt/edgecv/models/yolov8n.engine \
        image:=/camera/image_raw track:=true conf:=0.4

Publishes /<namespace>/detections (vision_msgs/Detection2DArray, track IDs in Detection2D.id)
and, while someone subscribes, /<namespace>/image_annotated. edgecv is a pip package, not an
ament package, so the node runs as a process (`edgecv ros`); its ROS arguments go after --ros-args.
Ctrl+C / launch shutdown sends SIGINT: the node stops cleanly and exits 0.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    return LaunchDescription(
        [
            DeclareLaunchArgument("model", default_value="/opt/edgecv/models/shapes-det.onnx", description="model file (.onnx / .engine)"),
            DeclareLaunchArgument("image", default_value="/camera/image_raw", description="sensor_msgs/Image topic to detect on"),
            DeclareLaunchArgument("namespace", default_value="edgecv", description="namespace of the node and its topics"),
            DeclareLaunchArgument("conf", default_value="0.25", description="score threshold"),
            DeclareLaunchArgument("iou", default_value="0.45", description="NMS IoU threshold"),
            DeclareLaunchArgument("track", default_value="true", description="ByteTrack IDs"),
            DeclareLaunchArgument("reliable", default_value="false", description="reliable image subscription (default: best effort)"),
            ExecuteProcess(
                cmd=[
                    "edgecv", "ros", arg("model"), "--node-name", "detector",
                    "--ros-args",
                    "-r", ["__ns:=/", arg("namespace")],
                    "-r", ["image:=", arg("image")],
                    "-p", ["conf:=", arg("conf")],
                    "-p", ["iou:=", arg("iou")],
                    "-p", ["track:=", arg("track")],
                    "-p", ["qos_reliable:=", arg("reliable")],
                ],
                output="screen",
                emulate_tty=True,
                sigterm_timeout="10",
            ),
        ]
    )
