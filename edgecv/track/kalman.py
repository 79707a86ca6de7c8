"""A constant-velocity Kalman filter over many boxes at once (x1 y1 x2 y2 corners and their velocities).

State per track: (8,) ``[x1, y1, x2, y2, vx1, vy1, vx2, vy2]`` in pixels and pixels
per frame; the measurement is the (4,) box. The noise is ByteTrack's tuning as
Roboflow's ``trackers`` sets it (initial covariance I, measurement noise 0.1 I,
process noise 0.01 I, one frame per step), so the two trackers' filters agree to
rounding. Every operation works on all tracks in one numpy call, which keeps a
tracker step well under a millisecond at tens of objects.
"""

from __future__ import annotations

import numpy as np

_DIM_X, _DIM_Z = 8, 4
F = np.eye(_DIM_X)
F[:4, 4:] = np.eye(4)  # x += v (one frame)
H = np.eye(_DIM_Z, _DIM_X)
Q = np.eye(_DIM_X) * 0.01
R = np.eye(_DIM_Z) * 0.1
_I = np.eye(_DIM_X)


def initiate(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (K, 4) boxes: means (K, 8) float64 (zero velocity) and covariances (K, 8, 8) = I."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    mean = np.zeros((len(boxes), _DIM_X))
    mean[:, :4] = boxes
    cov = np.broadcast_to(_I, (len(boxes), _DIM_X, _DIM_X)).copy()
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for every track: (T, 8), (T, 8, 8) -> the same shapes."""
    return mean @ F.T, F @ cov @ F.T + Q


def update(mean: np.ndarray, cov: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks with their matched boxes (Joseph form, as ``trackers`` does).

    Args:
        mean: (K, 8); cov: (K, 8, 8); boxes: (K, 4) measurements, row k for track k.

    Returns:
        The corrected ``(mean, cov)``.
    """
    z = np.asarray(boxes, np.float64).reshape(-1, _DIM_Z)
    innovation = z - mean @ H.T  # (K, 4)
    pht = cov @ H.T  # (K, 8, 4)
    s = H @ pht + R  # (K, 4, 4)
    gain = pht @ np.linalg.inv(s)  # (K, 8, 4)
    mean = mean + np.einsum("kij,kj->ki", gain, innovation)
    i_kh = _I - gain @ H  # (K, 8, 8)
    cov = i_kh @ cov @ i_kh.transpose(0, 2, 1) + gain @ R @ gain.transpose(0, 2, 1)
    return mean, cov
