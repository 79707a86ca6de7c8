"""segment_postprocess on letterboxed synthetic logits with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv.vision.letterbox import LetterboxTransform, letterbox
from edgecv.vision.segment import segment_postprocess


def halves_logits(transform: LetterboxTransform, c: int = 3, stride: int = 1) -> np.ndarray:
    """(1, c, h, w) logits: padding says class 0, the image's left half class 1, right half class 2."""
    h, w = transform.dst_size
    y0, y1, x0, x1 = transform.content_window()
    labels = np.zeros((h, w), np.int64)
    mid = (x0 + x1) // 2
    labels[y0:y1, x0:mid] = 1
    labels[y0:y1, mid:x1] = 2
    labels = labels[stride // 2 :: stride, stride // 2 :: stride]
    logits = np.full((1, c, *labels.shape), -4.0, np.float32)
    np.put_along_axis(logits[0], labels[None], 4.0, axis=0)
    return logits


def expected_halves(size: tuple[int, int]) -> np.ndarray:
    h, w = size
    want = np.ones((h, w), np.int32)
    want[:, w // 2 :] = 2
    return want


@pytest.mark.parametrize("src", [(300, 400), (600, 800), (150, 200)])
def test_left_and_right_halves_at_original_size(src: tuple[int, int]) -> None:
    # 4:3 image letterboxed into a 400x400 square: padding above and below.
    _, t = letterbox(np.zeros((*src, 3), np.uint8), (400, 400))
    assert t.pad_y > 0
    logits = halves_logits(t)
    before = logits.copy()
    class_map, scores = segment_postprocess(logits, t)
    assert class_map.shape == src and class_map.dtype == np.int32
    assert scores.shape == src and scores.dtype == np.float32
    np.testing.assert_array_equal(class_map, expected_halves(src))
    np.testing.assert_array_equal(logits, before)  # the input is not modified
    # away from the edge the softmax of (4, -4, -4) is exact
    p = np.exp(4.0) / (np.exp(4.0) + 2 * np.exp(-4.0))
    np.testing.assert_allclose(scores[:, : src[1] // 4], p, rtol=1e-5)


def test_portrait_image_and_unbatched_logits() -> None:
    _, t = letterbox(np.zeros((400, 300, 3), np.uint8), (320, 320))
    assert t.pad_x > 0
    class_map, _ = segment_postprocess(halves_logits(t)[0], t)
    np.testing.assert_array_equal(class_map, expected_halves((400, 300)))


def test_lower_resolution_logits() -> None:
    # stride-4 logits (112, 112) of a 448x448 input; the padding (56 rows) is whole logit cells
    _, t = letterbox(np.zeros((600, 800, 3), np.uint8), (448, 448))
    assert t.pad_y == 56
    class_map, _ = segment_postprocess(halves_logits(t, stride=4), t)
    want = expected_halves((600, 800))
    # The first/last 4 output rows lie above/below the centre of the outermost content cell, so
    # bilinear interpolation mixes in the padding cell; where the class-1/2 edge splits the
    # content's vote, padding (class 0) legitimately wins a few pixels there.
    np.testing.assert_array_equal(class_map[4:-4], want[4:-4])
    assert (class_map[:4] != want[:4]).sum() < 10


def test_binary_sigmoid_output() -> None:
    _, t = letterbox(np.zeros((300, 400, 3), np.uint8), (400, 400))
    logit = halves_logits(t)[:, 2:3] * 0.5  # +2 on the right half, -2 elsewhere
    class_map, scores = segment_postprocess(logit, t)
    want = (expected_halves((300, 400)) == 2).astype(np.int32)
    np.testing.assert_array_equal(class_map, want)
    np.testing.assert_allclose(scores[:, :100], 1 / (1 + np.exp(-2.0)), rtol=1e-5)


def test_equals_full_bilinear_resize_then_argmax() -> None:
    rng = np.random.default_rng(0)
    _, t = letterbox(np.zeros((270, 480, 3), np.uint8), (128, 128))
    coarse = rng.normal(0, 3, (6, 9, 9)).astype(np.float32)
    logits = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_CUBIC) for c in coarse])
    class_map, scores = segment_postprocess(logits, t)

    # brute force: interpolate every class plane at every output pixel (float64), then argmax
    y0, y1, x0, x1 = t.content_window()
    h, w = t.src_size

    def axis(start: int, stop: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n) + 0.5) * (stop - start) / n + start - 0.5, 0, size - 1)
        i0 = np.floor(pos).astype(int)
        return i0, np.minimum(i0 + 1, size - 1), pos - i0

    (r0, r1, fy), (c0, c1, fx) = axis(y0, y1, h, 128), axis(x0, x1, w, 128)
    lg = logits.astype(np.float64)
    rows = lg[:, r0] * (1 - fy)[None, :, None] + lg[:, r1] * fy[None, :, None]
    full = rows[:, :, c0] * (1 - fx) + rows[:, :, c1] * fx
    assert (class_map != full.argmax(0)).mean() < 1e-4  # only float32 near-ties may differ
    assert len(np.unique(class_map)) >= 3
    assert 0 < scores.min() and scores.max() <= 1


def test_bad_shape_raises() -> None:
    _, t = letterbox(np.zeros((300, 400, 3), np.uint8), (400, 400))
    with pytest.raises(ValueError, match=r"\(1, C, h, w\)"):
        segment_postprocess(np.zeros((400, 400), np.float32), t)
