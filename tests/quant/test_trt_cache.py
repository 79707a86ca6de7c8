"""TensorRT calibration caches: format, parse, name checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecv.engine.trt_cache import (
    check_names,
    format_cache,
    parse_cache,
    read_cache,
    scale_hex,
    version_code,
    write_cache,
)
from edgecv.errors import ArtifactError


def test_scale_hex_is_big_endian_float32_bits() -> None:
    assert scale_hex(1 / 127) == "3c010204"  # the value TensorRT writes for an input in [0, 1]
    assert scale_hex(1.0) == "3f800000"


def test_version_codes_match_tensorrt() -> None:
    assert version_code((10, 3, 0)) == 100300
    assert version_code((8, 6, 1)) == 8601


def test_roundtrip(tmp_path: Path) -> None:
    amax = {"images": 1.0, "/backbone/Conv_output_0": 6.5, "dead": 0.0}
    path = write_cache(tmp_path / "m.calib", amax)
    text = path.read_text()
    assert text.splitlines()[0] == "TRT-100300-EntropyCalibration2"
    assert "images: 3c010204" in text and "dead" not in text
    cache = read_cache(path)
    assert cache.version == 100300 and cache.algorithm == "EntropyCalibration2"
    assert cache.amax("/backbone/Conv_output_0") == pytest.approx(6.5, rel=1e-6)


def test_reads_a_tensorrt8_cache_with_windows_line_endings() -> None:
    cache = parse_cache("TRT-8601-EntropyCalibration2\r\ninput: 3c010204\r\nout: 3d000000\r\n")
    assert cache.version == 8601 and set(cache.scales) == {"input", "out"}


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ("hello\nx: 1\n", "not a TensorRT calibration cache"), ("TRT-100300-EntropyCalibration2\nx 3c010204\n", ":2: cannot read")],
)
def test_corrupt_caches_are_clear_errors(text: str, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        parse_cache(text)


def test_names_from_another_model_are_listed() -> None:
    cache = parse_cache(format_cache({"images": 1.0, "other_1": 2.0, "other_2": 3.0}))
    check_names(parse_cache(format_cache({"images": 1.0})), {"images", "x"})
    with pytest.raises(ArtifactError, match=r"2 of 3 tensors .* not in the model \(e.g. 'other_1', 'other_2'\)"):
        check_names(cache, {"images", "x"})
