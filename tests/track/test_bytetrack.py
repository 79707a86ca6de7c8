"""ByteTrack's behaviour on scripted scenes (the reference comparison is in test_reference_trackers.py)."""

from __future__ import annotations

import numpy as np
import pytest

import edgecv
from edgecv.errors import ConfigError
from edgecv.results import Detections
from edgecv.track import ByteTrack, TrackConfig


def dets(boxes: list[list[float]], scores: list[float], classes: list[int] | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        np.asarray(boxes, np.float32).reshape(n, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes if classes is not None else [0] * n, np.int32),
    )


def box(x: float, y: float, w: float = 40, h: float = 80) -> list[float]:
    return [x, y, x + w, y + h]


def test_two_objects_keep_their_ids_whatever_the_order() -> None:
    tracker = ByteTrack()
    rng = np.random.default_rng(0)
    seen: dict[str, set[int]] = {"left": set(), "right": set()}
    for t in range(20):
        objs = {"left": box(10 + 5 * t, 50), "right": box(400 - 5 * t, 60)}
        order = list(objs)
        if rng.random() < 0.5:
            order.reverse()
        out = tracker.update(dets([objs[k] for k in order], [0.9, 0.85]))
        assert out.tracker_id is not None and out.tracker_id.dtype == np.int64
        np.testing.assert_array_equal(out.xyxy, np.asarray([objs[k] for k in order], np.float32))  # input order kept
        if t == 0:
            assert out.tracker_id.tolist() == [-1, -1]  # confirmed only after min_hits=2 matched frames
            continue
        for k, tid in zip(order, out.tracker_id.tolist()):
            seen[k].add(tid)
    assert seen["left"] | seen["right"] == {0, 1}
    assert len(seen["left"]) == 1 and len(seen["right"]) == 1


def test_low_score_detections_continue_tracks_but_never_start_them() -> None:
    tracker = ByteTrack()
    ids = []
    for t in range(12):
        score = 0.9 if t < 4 or t >= 8 else 0.3  # occluded: the detector's score drops for 4 frames
        ghost = box(600, 300)  # a low-score box that never becomes a track
        out = tracker.update(dets([box(10 + 4 * t, 20), ghost], [score, 0.4]))
        ids.append(out.tracker_id.tolist())
    assert all(i[0] == 0 for i in ids[1:])  # one ID throughout, through the low-score frames
    assert all(i[1] == -1 for i in ids)


def test_second_stage_is_what_keeps_low_scores() -> None:
    # with high_thresh=0.2 every detection is "high"; with the default the 0.3 frames go through stage 2
    for cfg in (TrackConfig(), TrackConfig(high_thresh=0.2, new_track_thresh=0.7)):
        tracker = ByteTrack(cfg)
        out = [tracker.update(dets([box(10 + 4 * t, 20)], [0.9 if t < 3 else 0.3])).tracker_id[0] for t in range(6)]
        assert out[1:] == [0] * 5


def test_lost_track_is_recovered_within_the_buffer_and_replaced_after() -> None:
    cfg = TrackConfig(track_buffer=5)
    tracker = ByteTrack(cfg)
    for _ in range(5):
        tracker.update(dets([box(100, 100)], [0.9]))
    for _ in range(5):  # gone for 5 frames: still inside the buffer
        assert tracker.update(Detections.empty()).tracker_id.size == 0
    assert tracker.update(dets([box(100, 100)], [0.9])).tracker_id.tolist() == [0]
    for _ in range(6):  # gone for 6 frames: dropped
        tracker.update(Detections.empty())
    assert len(tracker) == 0
    tracker.update(dets([box(100, 100)], [0.9]))
    assert tracker.update(dets([box(100, 100)], [0.9])).tracker_id.tolist() == [1]  # a new ID, never reused


def test_unconfirmed_track_missed_once_is_dropped() -> None:
    tracker = ByteTrack()
    tracker.update(dets([box(0, 0)], [0.9]))
    tracker.update(Detections.empty())
    assert len(tracker) == 0


def test_frame_rate_scales_the_buffer_and_reset() -> None:
    assert TrackConfig(track_buffer=30, frame_rate=60).max_lost_frames == 60
    assert TrackConfig(track_buffer=3, frame_rate=15).max_lost_frames == 2
    assert TrackConfig(track_buffer=0).max_lost_frames == 0
    tracker = ByteTrack()
    for _ in range(3):
        tracker.update(dets([box(0, 0)], [0.9]))
    ids, boxes = tracker.tracks
    assert ids.tolist() == [0] and boxes.shape == (1, 4)
    tracker.reset()
    assert len(tracker) == 0 and tracker.tracks[0].size == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"high_thresh": 1.5}, "high_thresh must be in"),
        ({"match_iou": -0.1}, "match_iou must be in"),
        ({"match_iou": 0.0}, "match_iou must be in"),
        ({"high_thresh": 0.8, "new_track_thresh": 0.5}, "below high_thresh"),
        ({"min_hits": 0}, "min_hits"),
        ({"track_buffer": -1}, "track_buffer"),
        ({"track_buffer": 2.5}, "track_buffer"),
        ({"frame_rate": 0}, "frame_rate"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrackConfig(**kwargs)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="TrackConfig"):
        ByteTrack({"high_thresh": 0.5})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Detections"):
        ByteTrack().update(np.zeros((1, 4)))  # type: ignore[arg-type]


def test_tracker_id_through_indexing_and_json() -> None:
    d = dets([box(0, 0), box(50, 0), box(100, 0)], [0.9, 0.8, 0.7])
    tracked = Detections(d.xyxy, d.scores, d.class_ids, tracker_id=np.array([3, -1, 7], np.int64))
    assert tracked[[2, 0]].tracker_id.tolist() == [7, 3]
    assert tracked[tracked.scores > 0.75].tracker_id.tolist() == [3, -1]
    assert tracked[1].tracker_id.tolist() == [-1]
    assert [x["track_id"] for x in tracked.to_dict()["detections"]] == [3, -1, 7]
    assert "track_id" not in d.to_dict()["detections"][0]
    assert tracked.with_nms(0.5).tracker_id is not None
    with pytest.raises(ValueError, match=r"tracker_id must be \(3\) int64"):
        Detections(d.xyxy, d.scores, d.class_ids, tracker_id=np.array([1, 2, 3], np.int32))
    with pytest.raises(ValueError, match="tracker_id must be"):
        Detections(d.xyxy, d.scores, d.class_ids, tracker_id=np.array([1, 2], np.int64))


def test_load_with_track_steps_the_tracker(det_onnx, demo_video) -> None:
    import cv2

    model = edgecv.load(det_onnx, track=True)
    plain = edgecv.load(det_onnx)
    cap = cv2.VideoCapture(str(demo_video))
    ids: list[int] = []
    try:
        for _ in range(15):
            ok, frame = cap.read()
            assert ok
            out = model(frame)
            ref = plain(frame)
            np.testing.assert_array_equal(out.xyxy, ref.xyxy)  # tracking adds IDs, changes nothing else
            assert out.tracker_id is not None and ref.tracker_id is None
            ids += out.tracker_id.tolist()
    finally:
        cap.release()
        model.close()
        plain.close()
    assert max(ids) >= 0  # the demo's moving shapes get tracked
    with pytest.raises(ConfigError, match="track must be"):
        edgecv.load(det_onnx, track="yes")  # type: ignore[arg-type]


def test_load_segmenter_with_track_is_an_error(seg_onnx) -> None:
    with pytest.raises(ConfigError, match="detection model"):
        edgecv.load(seg_onnx, track=True)
