"""ByteTrack: multi-object tracking by associating every detection box, high and low scores alike.

Each frame: every track's Kalman filter predicts its box; detections with a
score >= ``high_thresh`` are matched to all tracks by IoU (optimal assignment);
the tracks left over are matched to the low-score detections (the "byte" step
that keeps occluded objects alive); unmatched high detections with a score >=
``new_track_thresh`` start new tracks. A track gets an ID once it was matched
on ``min_hits`` consecutive frames, and is dropped after ``track_buffer`` frames
(at 30 FPS, scaled by ``frame_rate``) without a match.

The rules are those of Roboflow's ``trackers`` ByteTrack (Apache-2.0), which
edgecv's tests run side by side with this one; the only difference is on
purpose: the output keeps the input order of the detections (``trackers``
regroups them by association stage). Class-agnostic, like the reference: a track
follows a box whatever class the detector gives it.

    tracker = ByteTrack()
    for frame in frames:
        detections = tracker.update(model(frame))   # detections.tracker_id: (N,) int64, -1 = not (yet) tracked
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from edgecv.errors import ConfigError
from edgecv.results import Detections
from edgecv.track import kalman
from edgecv.track.assignment import box_iou, match


@dataclass(frozen=True, slots=True)
class TrackConfig:
    """ByteTrack's thresholds and track lifetime (defaults: those of Roboflow's ``trackers``).

    Attributes:
        high_thresh: detections scoring at least this are "high" (first association stage);
            the others are only used to continue existing tracks.
        new_track_thresh: an unmatched high detection starts a track only from this score
            (>= ``high_thresh``: new tracks only come from high detections).
        match_iou: the least IoU between a track's predicted box and a detection for a match (> 0).
        min_hits: consecutive matched frames before a track is confirmed and given an ID.
        track_buffer: how many frames (at 30 FPS) a lost track is kept for re-association.
        frame_rate: the stream's frame rate; scales ``track_buffer`` (60 FPS keeps tracks 2x the frames).
    """

    high_thresh: float = 0.6
    new_track_thresh: float = 0.7
    match_iou: float = 0.1
    min_hits: int = 2
    track_buffer: int = 30
    frame_rate: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.match_iou, (int, float)) or not 0.0 < self.match_iou <= 1.0:
            raise ConfigError(f"track match_iou must be in (0, 1], got {self.match_iou!r}", hint="e.g. match_iou=0.1")
        for name in ("high_thresh", "new_track_thresh"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"track {name} must be in [0, 1], got {value!r}", hint=f"e.g. {name}={getattr(TrackConfig, name)}")
        if self.new_track_thresh < self.high_thresh:
            raise ConfigError(
                f"track new_track_thresh {self.new_track_thresh} is below high_thresh {self.high_thresh}: "
                "new tracks only start from high-score detections, so it would have no effect",
                hint=f"set new_track_thresh >= {self.high_thresh}, or lower high_thresh",
            )
        if isinstance(self.min_hits, bool) or not isinstance(self.min_hits, int) or self.min_hits < 1:
            raise ConfigError(f"track min_hits must be an integer >= 1, got {self.min_hits!r}", hint="e.g. min_hits=2")
        if isinstance(self.track_buffer, bool) or not isinstance(self.track_buffer, int) or self.track_buffer < 0:
            raise ConfigError(f"track track_buffer must be an integer >= 0 (frames), got {self.track_buffer!r}", hint="e.g. track_buffer=30")
        if not isinstance(self.frame_rate, (int, float)) or not math.isfinite(self.frame_rate) or self.frame_rate <= 0:
            raise ConfigError(f"track frame_rate must be a positive number, got {self.frame_rate!r}", hint="the stream's FPS, e.g. 30")

    @property
    def max_lost_frames(self) -> int:
        """Frames a track may go unmatched before it is dropped (``track_buffer`` scaled to ``frame_rate``)."""
        if self.track_buffer == 0:
            return 0
        return max(1, math.ceil(self.frame_rate / 30.0 * self.track_buffer))


class ByteTrack:
    """A ByteTrack tracker for one stream; step it with :meth:`update` once per frame.

    Not thread-safe: one tracker per stream, stepped from one thread. IDs start at 0
    and are never reused within a tracker (until :meth:`reset`).

    Args:
        config: thresholds and lifetime; ``None`` uses :class:`TrackConfig`'s defaults.
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        if config is not None and not isinstance(config, TrackConfig):
            raise ConfigError(f"ByteTrack takes a TrackConfig, got {type(config).__name__}", hint="ByteTrack(TrackConfig(...))")
        self.config = config or TrackConfig()
        self._max_lost = self.config.max_lost_frames
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart IDs at 0 (a new video or scene)."""
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._ids = np.zeros(0, np.int64)  # -1 until confirmed
        self._hits = np.zeros(0, np.int64)  # consecutive matched frames
        self._lost = np.zeros(0, np.int64)  # frames since the last match
        self._next_id = 0
        self.frame_count = 0

    def __len__(self) -> int:
        """The number of tracks alive (confirmed or not)."""
        return int(self._ids.size)

    @property
    def tracks(self) -> tuple[np.ndarray, np.ndarray]:
        """Confirmed tracks alive now: ``(ids (T,) int64, boxes (T, 4) float32)``, boxes as the filter estimates them."""
        keep = self._ids >= 0
        return self._ids[keep].copy(), self._mean[keep, :4].astype(np.float32)

    def update(self, detections: Detections) -> Detections:
        """Associate one frame's detections with the tracks.

        Args:
            detections: the frame's detections (any classes; scores in [0, 1]).

        Returns:
            The same detections, in the same order, with ``tracker_id`` (N,) int64:
            the track's ID, or -1 where the detection belongs to no confirmed track.
        """
        if not isinstance(detections, Detections):
            raise TypeError(f"ByteTrack.update takes Detections, got {type(detections).__name__}")
        cfg = self.config
        self.frame_count += 1
        n = len(detections)
        out = np.full(n, -1, np.int64)
        if len(self) == 0 and n == 0:
            return dataclasses.replace(detections, tracker_id=out)
        # predict every track one frame ahead; a track missed last frame restarts its hit count
        self._mean, self._cov = kalman.predict(self._mean, self._cov)
        self._hits[self._lost > 0] = 0
        self._lost += 1
        boxes = detections.xyxy.astype(np.float64)
        scores = detections.scores
        high = np.flatnonzero(scores >= cfg.high_thresh)
        low = np.flatnonzero(scores < cfg.high_thresh)
        predicted = self._mean[:, :4]
        # stage 1: high-score detections against every track
        pairs1, free_tracks, free_high = match(box_iou(predicted, boxes[high]), cfg.match_iou)
        self._assign(pairs1[:, 0], high[pairs1[:, 1]], boxes, out)
        # stage 2: low-score detections against the tracks stage 1 left
        pairs2, _, _ = match(box_iou(predicted[free_tracks], boxes[low]), cfg.match_iou)
        self._assign(free_tracks[pairs2[:, 0]], low[pairs2[:, 1]], boxes, out)
        # new tracks from unmatched high-score detections (confirmed later, after min_hits matches)
        starts = high[free_high]
        starts = starts[scores[starts] >= cfg.new_track_thresh]
        if starts.size:
            mean, cov = kalman.initiate(boxes[starts])
            self._mean = np.concatenate([self._mean, mean])
            self._cov = np.concatenate([self._cov, cov])
            self._ids = np.concatenate([self._ids, np.full(starts.size, -1, np.int64)])
            self._hits = np.concatenate([self._hits, np.ones(starts.size, np.int64)])
            self._lost = np.concatenate([self._lost, np.zeros(starts.size, np.int64)])
        # drop tracks lost too long, and unconfirmed tracks missed this frame
        confirmed = (self._ids >= 0) | (self._hits >= cfg.min_hits)
        alive = (self._lost <= self._max_lost) & (confirmed | (self._lost == 0))
        if not alive.all():
            self._mean, self._cov = self._mean[alive], self._cov[alive]
            self._ids, self._hits, self._lost = self._ids[alive], self._hits[alive], self._lost[alive]
        return dataclasses.replace(detections, tracker_id=out)

    def _assign(self, tracks: np.ndarray, dets: np.ndarray, boxes: np.ndarray, out: np.ndarray) -> None:
        """Update matched ``tracks`` with detection rows ``dets``; confirm those with enough hits; write IDs to ``out``."""
        if tracks.size == 0:
            return
        self._mean[tracks], self._cov[tracks] = kalman.update(self._mean[tracks], self._cov[tracks], boxes[dets])
        self._lost[tracks] = 0
        self._hits[tracks] += 1
        for t in tracks.tolist():  # IDs in match order, as the reference allocates them
            if self._ids[t] < 0 and self._hits[t] >= self.config.min_hits:
                self._ids[t] = self._next_id
                self._next_id += 1
        out[dets] = self._ids[tracks]
