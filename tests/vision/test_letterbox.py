from __future__ import annotations

import numpy as np
import pytest

from edgecv.artifact import ModelMeta
from edgecv.vision.letterbox import letterbox, preprocess


@pytest.mark.parametrize("src", [(480, 640), (640, 480), (256, 256), (100, 333)])
def test_boxes_round_trip_through_the_transform(src: tuple[int, int]) -> None:
    image = np.zeros((*src, 3), np.uint8)
    out, t = letterbox(image, (256, 256))
    assert out.shape == (256, 256, 3)
    boxes = np.array([[5, 7, src[1] - 3, src[0] - 2], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(t.boxes_to_src(t.boxes_to_dst(boxes)), boxes, atol=1e-3)


def test_boxes_mapped_back_are_clipped_to_the_image() -> None:
    _, t = letterbox(np.zeros((96, 128, 3), np.uint8), (64, 64))
    back = t.boxes_to_src(np.array([[-10, -10, 100, 100], [10, 20, 30, 40]], np.float32))
    assert back[0].tolist() == [0, 0, 128, 96]
    np.testing.assert_allclose(back[1], [20, 24, 60, 64])


def test_content_lands_where_the_transform_says() -> None:
    image = np.full((480, 640, 3), 255, np.uint8)
    out, t = letterbox(image, (320, 320), pad_value=0)
    y0, y1, x0, x1 = t.content_window()
    assert (y0, y1, x0, x1) == (40, 280, 0, 320)
    assert out[y0:y1, x0:x1].min() == 255 and out[:y0].max() == 0 and out[y1:].max() == 0


def test_minimal_padding_for_dynamic_models() -> None:
    out, t = letterbox(np.zeros((480, 640, 3), np.uint8), (320, 320), stride=32)
    assert out.shape == (256, 320, 3)  # 240 rows padded only to the next multiple of 32
    assert t.pad_y == 8 and t.scale == 0.5


def test_preprocess_follows_metadata() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    meta = ModelMeta("detect", ("a",), (32, 32), "yolov8", dynamic=False, pad_value=0)
    x, _ = preprocess(image, meta)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, 0, 16, 16] == 1.0 and x[0, 2, 16, 16] == 0.0  # RGB order, scaled to [0, 1]
    norm = meta.replace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    y, _ = preprocess(image, norm)
    assert y[0, 0, 16, 16] == 1.0 and y[0, 1, 16, 16] == -1.0
    in_graph = meta.replace(preprocess_in_graph=True)
    z, _ = preprocess(image, in_graph)
    assert z.shape == (1, 32, 32, 3) and z.dtype == np.uint8
    with pytest.raises(ValueError, match="BGR uint8"):
        preprocess(image.astype(np.float32), meta)


@pytest.mark.parametrize("color", ["BGR", "RGB"])
@pytest.mark.parametrize("norm", [((0, 0, 0), (1, 1, 1)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_preprocess_is_the_plain_float32_formula_bit_for_bit(color: str, norm: tuple) -> None:
    """The one-pass NCHW conversion equals convert-scale-normalize-transpose done step by step in float32."""
    rng = np.random.default_rng(len(color) + int(norm[0][0] * 1000))
    meta = ModelMeta("detect", ("a",), (320, 320), "yolov8", dynamic=True, color=color, mean=norm[0], std=norm[1])
    for shape in ((480, 640), (333, 101)):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        got, _ = preprocess(image, meta)
        boxed, _ = letterbox(image, (320, 320), pad_value=meta.pad_value, stride=meta.stride)
        x = (boxed[..., ::-1] if color == "RGB" else boxed).astype(np.float32) * np.float32(1 / 255)
        x = (x - np.asarray(norm[0], np.float32)) / np.asarray(norm[1], np.float32)
        assert got.flags.c_contiguous and np.array_equal(got, x.transpose(2, 0, 1)[None])
