"""Multi-object tracking in pure numpy: ByteTrack, its Kalman filter, and a linear-assignment solver."""

from __future__ import annotations

from edgecv.track.assignment import box_iou, linear_sum_assignment
from edgecv.track.bytetrack import ByteTrack, TrackConfig

__all__ = ["ByteTrack", "TrackConfig", "box_iou", "linear_sum_assignment"]
