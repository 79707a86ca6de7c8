"""Annotators draw in place, return the same array, and cope with empty results."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import ConfigError
from edgecv.results import Detections, Segmentation
from edgecv.vision.draw import (
    Annotator,
    BoxAnnotator,
    ChainAnnotator,
    MaskAnnotator,
    color_for,
    default_annotator,
    draw_status,
)

GRAY = 90


def frame(h: int = 240, w: int = 320) -> np.ndarray:
    return np.full((h, w, 3), GRAY, np.uint8)


def detections(masks: bool = False) -> Detections:
    xyxy = np.array([[40, 60, 120, 200], [200, 10, 300, 90]], np.float32)
    m = None
    if masks:
        m = np.zeros((2, 240, 320), bool)
        m[0, 100:150, 60:100] = True
        m[1, 20:80, 210:290] = True
    return Detections(xyxy, np.array([0.9, 0.4], np.float32), np.array([0, 2], np.int32), ("person", "bike", "car"), m)


def changed(img: np.ndarray) -> np.ndarray:
    return (img != GRAY).any(axis=2)


def test_box_annotator_draws_in_place_around_the_box() -> None:
    img = frame()
    out = BoxAnnotator().annotate(img, detections())
    assert out is img
    diff = changed(img)
    assert diff[60:201, 40].all()  # left edge of box 0
    assert not diff[70:190, 45:115].any()  # the inside stays untouched
    assert diff[:60, 40:120].any()  # its label sits above it
    assert (img[60, 40:120] == color_for(0)).all()
    assert not diff[220:, :].any()


def test_empty_detections_and_other_results_leave_the_frame_alone() -> None:
    img = frame()
    for annotator in (BoxAnnotator(), MaskAnnotator(), default_annotator("detect")):
        assert annotator.annotate(img, Detections.empty()) is img
    assert MaskAnnotator().annotate(img, detections()) is img  # detections without masks
    assert BoxAnnotator().annotate(img, Segmentation(np.ones((240, 320), np.int32))) is img
    assert not changed(img).any()


def test_label_of_a_box_at_the_top_edge_stays_inside_the_frame() -> None:
    img = frame()
    det = Detections(np.array([[250, 0, 319, 50]], np.float32), np.array([0.5], np.float32), np.array([1], np.int32))
    BoxAnnotator(thickness=1, show_scores=False).annotate(img, det)
    assert changed(img)[1:20, 250:319].any()


def test_mask_annotator_on_segmentation_skips_background() -> None:
    img = frame()
    class_map = np.zeros((240, 320), np.int32)
    class_map[50:100, 50:150] = 1
    class_map[150:200, 200:300] = 7
    out = MaskAnnotator(alpha=0.5).annotate(img, Segmentation(class_map))
    assert out is img
    np.testing.assert_array_equal(changed(img), class_map != 0)
    expected = np.round(0.5 * GRAY + 0.5 * np.array(color_for(7)))
    np.testing.assert_allclose(img[170, 250], expected, atol=1)


def test_mask_annotator_on_instance_masks() -> None:
    img = frame()
    det = detections(masks=True)
    MaskAnnotator().annotate(img, det)
    np.testing.assert_array_equal(changed(img), det.masks.any(axis=0))


def test_default_annotators_and_unknown_task() -> None:
    img = frame()
    assert isinstance(default_annotator("segment"), MaskAnnotator)
    annotator = default_annotator("detect")
    assert isinstance(annotator, ChainAnnotator) and isinstance(annotator, Annotator)
    assert annotator.annotate(img, detections(masks=True)) is img
    assert changed(img).any()
    with pytest.raises(ConfigError, match="detct") as err:
        default_annotator("detct")
    assert "did you mean 'detect'" in str(err.value)


def test_draw_status_top_left() -> None:
    img = frame(480, 640)
    assert draw_status(img, []) is img and not changed(img).any()
    assert draw_status(img, ["FPS 29.9", "pre 1.2 ms  infer 8.4 ms  post 0.7 ms"]) is img
    diff = changed(img)
    assert (img[:3, :200] < GRAY).all()  # dimmed box behind the text (its top margin has no text)
    assert diff[:25, :80].mean() > 0.9
    assert not diff[240:, 320:].any()
    assert (img[:25, :80] > 200).any()  # white text


def test_bad_frames_raise() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        BoxAnnotator().annotate(frame()[:, ::2], detections())
    with pytest.raises(ValueError, match="uint8"):
        draw_status(np.zeros((10, 10, 3), np.float32), ["x"])
    with pytest.raises(ValueError, match="does not match the frame"):
        MaskAnnotator().annotate(frame(), Segmentation(np.ones((10, 10), np.int32)))


def test_box_annotator_draws_track_ids_in_track_colours() -> None:
    from edgecv.vision.draw import color_for

    xyxy = np.array([[20, 20, 120, 120], [200, 20, 300, 120]], np.float32)
    base = Detections(xyxy, np.array([0.9, 0.8], np.float32), np.array([0, 0], np.int32), ("obj",))
    tracked = Detections(base.xyxy, base.scores, base.class_ids, base.names, tracker_id=np.array([5, -1], np.int64))
    plain = BoxAnnotator(thickness=2, show_labels=False).annotate(np.zeros((240, 320, 3), np.uint8), base)
    frame = BoxAnnotator(thickness=2, show_labels=False).annotate(np.zeros((240, 320, 3), np.uint8), tracked)
    assert tuple(frame[70, 20]) == color_for(5)  # left edge of the tracked box: its track's colour
    assert tuple(frame[70, 200]) == color_for(0) == tuple(plain[70, 200])  # untracked: class colour
    labelled = BoxAnnotator(thickness=2).annotate(np.zeros((240, 320, 3), np.uint8), tracked)
    no_ids = BoxAnnotator(thickness=2, show_track_ids=False).annotate(np.zeros((240, 320, 3), np.uint8), tracked)
    assert not np.array_equal(labelled, no_ids)  # the "#5" prefix is drawn
