"""ROS 2: a detector node that subscribes to images and publishes ``vision_msgs/Detection2DArray``.

Needs ROS 2's ``rclpy``, ``sensor_msgs``, ``std_msgs`` and ``vision_msgs``: from the
ROS distribution on a robot (``source /opt/ros/$ROS_DISTRO/setup.bash``), or
``pip install 'edgecv[ros]'`` plus ``scripts/build_vision_msgs.sh`` on a PC
(vision_msgs is not on PyPI). Every module here imports without ROS; the ROS
imports happen when a node is built.
"""
