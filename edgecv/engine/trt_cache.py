"""TensorRT calibration caches (``model.calib``): write from our ranges, read existing ones.

The format is TensorRT's text cache, as ``IInt8Calibrator.write_calibration_cache``
produces it and ``trtexec --calib`` reads it::

    TRT-100300-EntropyCalibration2
    images: 3c010204
    /model.0/conv/Conv_output_0: 3d9a1b2c

A header ``TRT-<version>-<algorithm>`` (version 10.3.0 -> ``100300``; TensorRT 8 wrote
``8601`` for 8.6.1), then one line per tensor: the ONNX tensor name, which is the name
TensorRT's ONNX parser gives the network tensor, and the big-endian hex of the float32
scale ``amax / 127``. Tensors without a line are left in higher precision by TensorRT.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgecv.artifact import atomic_write_bytes
from edgecv.errors import ArtifactError, ConfigError

DEFAULT_VERSION = (10, 3, 0)  # JetPack 6.x ships TensorRT 10.3
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed cache: ``scales`` maps tensor name -> float32 scale (amax / 127)."""

    version: int
    algorithm: str
    scales: dict[str, float]

    def amax(self, name: str) -> float:
        return self.scales[name] * 127.0


def version_code(version: tuple[int, ...]) -> int:
    """TensorRT's ``NV_TENSORRT_VERSION`` number: 10.3.0 -> 100300, 8.6.1 -> 8601."""
    major, minor, patch = (list(version) + [0, 0])[:3]
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def scale_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_scale(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text.rjust(8, "0")))[0]


def format_cache(amax: Mapping[str, float], *, version: tuple[int, ...] = DEFAULT_VERSION, algorithm: str = "EntropyCalibration2") -> str:
    """The cache text for ``{tensor: amax}``; tensors with amax 0 (never non-zero) are left out."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown calibration algorithm {algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}")
    lines = [f"TRT-{version_code(version)}-{algorithm}"]
    for name, value in amax.items():
        if any(c in name for c in "\n\r") or ": " in name:
            raise ConfigError(f"tensor name {name!r} cannot be written to a TensorRT cache (it has ': ' or a newline)")
        if value > 0:
            lines.append(f"{name}: {scale_hex(value / 127.0)}")
    return "\n".join(lines) + "\n"


def write_cache(path: Path, amax: Mapping[str, float], **options: object) -> Path:
    """Write the cache atomically."""
    return atomic_write_bytes(Path(path), format_cache(amax, **options).encode())  # type: ignore[arg-type]


def parse_cache(text: str, *, source: str = "cache") -> CalibrationCache:
    """Parse cache text.

    Raises:
        ArtifactError: no TensorRT header, or a line that is not ``name: hex``.
    """
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    match = _HEADER.match(lines[0].strip()) if lines else None
    if match is None:
        raise ArtifactError(
            f"{source} is not a TensorRT calibration cache (first line {lines[0][:60]!r} is not 'TRT-<version>-<algorithm>')"
            if lines
            else f"{source} is empty",
            hint="pass a cache written by TensorRT or by `edgecv calibrate`",
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], 2):
        name, sep, value = line.rpartition(": ")
        try:
            if not sep or not name:
                raise ValueError("no 'name: hex'")
            scales[name] = hex_scale(value.strip())
        except ValueError as exc:
            raise ArtifactError(f"{source}:{number}: cannot read {line[:80]!r} ({exc})", hint="the cache is corrupt; calibrate again") from exc
    return CalibrationCache(int(match.group(1)), match.group(2), scales)


def read_cache(path: Path) -> CalibrationCache:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"calibration cache {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not a text calibration cache (TensorRT 7+ writes text)") from exc
    return parse_cache(text, source=str(path))


def check_names(cache: CalibrationCache, tensors: Iterable[str], *, source: str = "the cache") -> None:
    """Every cache entry must name a tensor of the model.

    Raises:
        ArtifactError: listing a few names the model lacks (the cache is for another model or export).
    """
    known = set(tensors)
    unknown = [name for name in cache.scales if name not in known]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:4])
        raise ArtifactError(
            f"{len(unknown)} of {len(cache.scales)} tensors in {source} are not in the model (e.g. {shown})",
            hint="the cache was made for another model or another export of it; calibrate this model again",
        )
